"""Shared fixtures: the real clips in ../shared/data and one Face Mesh per test module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from painedge import face as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PAINEDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def data(name: str) -> str:
    """A real test clip. Missing clips fail the test (a skip would let CI pass on nothing)."""
    path = DATA / name
    if not path.exists():
        pytest.fail(f"test clip {path} is missing: put shared/ beside the repo or set PAINEDGE_TEST_DATA")
    return str(path)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float)
        order = a.argsort()
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for v in np.unique(a):  # average the ranks of ties
            r[a == v] = r[a == v].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


@pytest.fixture(scope="module")
def still_mesh() -> F.FaceMesh:
    mesh = F.FaceMesh(F.MeshSettings(static_image_mode=True))
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def single_face_frames() -> list[np.ndarray]:
    return [frame for _, frame in F.read_video(data("single_face.mp4"))]
