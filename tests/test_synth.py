"""The synthetic expression generator, proved by what Face Mesh measures on its frames."""

from __future__ import annotations

import numpy as np
import pytest

from painedge import face as F
from painedge import synth as S

from .conftest import data, spearman

# Which cue each action unit must move (landmarks resolve PSPI terms: see face.Cues).
CUE_OF = {
    "au4": "brow_lowering",
    "au6": "orbital_tightening",
    "au7": "orbital_tightening",
    "au9": "levator",
    "au10": "levator",
    "au43": "eye_closure",
    "smile": "smile",
}
LEVELS = np.linspace(0.0, 1.0, 6)


def _identity(name: str) -> np.ndarray:
    if name == "astronaut":
        return S.load_face("astronaut")
    if name == "single_face.jpg":
        return F.read_image(data("single_face.jpg"))
    return next(F.read_video(data("single_face.mp4")))[1]  # the man in the clip, calm


IDENTITIES = ["astronaut", "single_face.jpg", "single_face.mp4"]


@pytest.fixture(scope="module", params=IDENTITIES)
def photo(request, still_mesh) -> S.Photo:
    return S.Photo.from_image(_identity(request.param), request.param, still_mesh)


@pytest.mark.parametrize("au", list(CUE_OF))
def test_measured_cue_rises_monotonically_with_intended_intensity(photo, still_mesh, au):
    measured = []
    for level in LEVELS:
        face = still_mesh.largest(photo.render({au: level}))
        assert face is not None, f"{photo.name}: Face Mesh lost the face at {au}={level}"
        measured.append(F.scores_from(F.normalise(face.points_px))[CUE_OF[au]])
    rho = spearman(LEVELS, np.array(measured))
    assert rho >= 0.9, f"{photo.name} {au}: Spearman {rho:.2f}, measured {np.round(measured, 2)}"


@pytest.mark.parametrize("au", S.ALL_MOTIONS)
def test_no_triangle_flips_at_full_intensity(photo, au):
    warp = S.Warp.build(photo, photo.displacements({au: 1.0}))
    assert warp.flipped_triangles() == 0
    assert warp.jacobian_min() > 0


def test_fit_scales_a_folding_expression_until_it_cannot_fold(photo):
    everything = {k: 1.0 for k in S.ALL_MOTIONS}
    fitted = photo.fit(everything)
    warp = S.Warp.build(photo, photo.displacements(fitted))
    assert warp.flipped_triangles() == 0 and warp.jacobian_min() > 0.05
    ratios = {round(fitted[k] / everything[k], 6) for k in everything}
    assert len(ratios) == 1 and 0 < ratios.pop() <= 1  # scaled as a whole, not distorted


def test_neutral_render_is_the_photo(photo):
    out = photo.render({})
    assert out.shape == photo.image.shape
    assert np.abs(out.astype(int) - photo.image.astype(int)).mean() < 0.5


def test_fold_check_catches_a_fold(photo):
    # Push the brows down through the eyes: the check must refuse it.
    disp = photo.displacements({"au4": 1.0}) * 6.0
    with pytest.raises(S.WarpError, match="folds the face"):
        S.Warp.build(photo, disp).check()


@pytest.mark.parametrize(
    "intensity, pspi",
    [
        ({}, 0.0),
        ({"smile": 1.0, "mouth_open": 1.0}, 0.0),  # not pain
        ({"au4": 1.0}, 5.0),
        ({"au6": 0.4, "au7": 0.8}, 4.0),  # max of the pair
        ({"au9": 1.0, "au10": 0.2}, 5.0),
        ({"au43": 0.4}, 0.0),
        ({"au43": 0.6}, 1.0),  # AU43 is 0/1
        ({k: 1.0 for k in S.PAIN_AUS}, 16.0),
    ],
)
def test_true_pspi(intensity, pspi):
    assert S.true_pspi(intensity) == pytest.approx(pspi)


def test_demo_script_goes_from_calm_to_grimace_and_back(photo):
    script = S.demo_script().fitted(photo)
    t = np.arange(0, script.duration_s, 0.25)
    labels = np.array([script.pain_label(x) for x in t])
    assert labels[0] == 0 and labels[-1] == 0
    assert labels.max() >= 9  # Severe or worse at the apex, even after fitting
    apex = t[labels.argmax()]
    assert 9 < apex < 20
    smile_t = 4.5
    assert script.intensity(smile_t)["smile"] > 0.5 and script.pain_label(smile_t) == 0
    assert script.intensity(7.5)["au43"] == pytest.approx(1.0)  # a blink ...
    assert script.pain_label(7.5) == 0  # ... is not pain


def test_play_is_deterministic_and_sized_like_the_photo(photo):
    a = [f for _, f, _ in S.play(photo, S.demo_script(), fps=5, duration_s=1.0, rng_seed=3)]
    b = [f for _, f, _ in S.play(photo, S.demo_script(), fps=5, duration_s=1.0, rng_seed=3)]
    assert len(a) == 5 and all(x.shape == photo.image.shape for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_photo_without_a_face_is_refused_clearly():
    with pytest.raises(ValueError, match="photo blank: no face found"):
        S.Photo.from_image(np.full((200, 200, 3), 128, np.uint8), "blank")
