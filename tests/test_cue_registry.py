"""One registry per cue (messages.CUES): the face code, the wire model, the face-item scales and `painedge cues`
are all made from it or checked against it, so a cue added in one place only fails here (or at import)."""

from __future__ import annotations

import io
import json
from dataclasses import fields, make_dataclass

import pytest
from pydantic import create_model

from painedge import face as F
from painedge import messages as M
from painedge import scales
from painedge.commands.faces import print_cues
from painedge.landmarks import open_mesh

from .conftest import data

PAIN_CUES = [c for c in M.CUES if c.name != "smile"]  # a smile is never pain: it discounts narrowing and lip raise


def test_the_registry_names_each_cue_once_and_pspi_after_them():
    assert len(set(M.CUE_NAMES)) == len(M.CUE_NAMES)
    assert M.CUE_FIELDS == (*M.CUE_NAMES, "pspi")
    assert len({c.header for c in (*M.CUES, M.PSPI)}) == len(M.CUES) + 1  # `painedge cues` columns tell apart


def test_face_cues_and_the_wire_model_have_the_registrys_fields_in_its_order():
    assert tuple(f.name for f in fields(F.Cues)) == M.CUE_FIELDS
    assert tuple(M.CueValues.model_fields) == M.CUE_FIELDS
    assert F.Cues.NAMES == M.CUE_NAMES and set(F.Cues.LABELS) == set(M.CUE_NAMES)
    assert F.N_CUES == len(M.CUE_FIELDS)  # the model's input vector: the cues, then PSPI/16


# What the import-time checks refuse: a cue the registry has and a model lacks, or the other way round.
EXTRA = M.CueSpec("jaw_clench", "AU31", "jaw clenched", "jaw")


@pytest.mark.parametrize("where", ["registry", "wire model", "face.Cues"])
def test_a_cue_added_in_one_place_only_is_refused_at_import(monkeypatch, where):
    from painedge.face import cues as cues_module

    if where == "registry":
        monkeypatch.setattr(M, "CUES", (*M.CUES, EXTRA))
        monkeypatch.setattr(cues_module, "CUE_FIELDS", (*M.CUE_NAMES, EXTRA.name, "pspi"))
    elif where == "wire model":
        monkeypatch.setattr(M, "CueValues", create_model("CueValues", __base__=M.CueValues, jaw_clench=(float, 0.0)))
    else:
        monkeypatch.setattr(cues_module, "Cues", make_dataclass("Cues", [("jaw_clench", float)], bases=(F.Cues,),
                                                                  frozen=True))
    checks = {"registry": [M.check_cue_fields, cues_module.check_cue_fields],
              "wire model": [M.check_cue_fields], "face.Cues": [cues_module.check_cue_fields]}[where]
    for check in checks:
        with pytest.raises(TypeError, match="cue registry"):
            check()


def test_the_wire_schema_describes_each_cue_by_its_action_units():
    properties = json.loads(M.json_schema())["$defs"]["CueValues"]["properties"]  # keys sorted: compare as a map
    assert {k: p["description"] for k, p in properties.items()} == {c.name: c.action_units for c in (*M.CUES, M.PSPI)}


def test_a_real_faces_scores_cues_and_reading_carry_every_cue():
    """single_face.jpg through the face code and onto the wire, as the daemon does (route.py: cues.as_dict())."""
    mesh = open_mesh(static=True, max_faces=2)
    feats = F.extract(F.read_image(data("single_face.jpg")), mesh, F.Baseline())
    mesh.close()
    assert feats is not None
    assert tuple(F.scores_of(F.measure(feats.landmarks))) == M.CUE_NAMES
    assert tuple(feats.cues.as_dict()) == M.CUE_FIELDS
    assert tuple(M.CueValues(**feats.cues.as_dict()).model_dump()) == M.CUE_FIELDS


@pytest.mark.parametrize("cue", PAIN_CUES, ids=lambda c: c.name)
def test_every_pain_cue_is_explained_in_its_own_words(cue):
    values = {k: 0.0 for k in M.CUE_FIELDS} | {cue.name: 1.0}
    assert F.Cues(**values).describe().startswith(cue.words)


def test_a_smile_alone_is_explained_as_smiling():
    values = {k: 0.0 for k in M.CUE_FIELDS} | {"smile": 1.0}
    assert F.Cues(**values).describe() == M.CUES[M.CUE_NAMES.index("smile")].words


def test_the_scales_read_the_registrys_tightening_cues_and_eye_closure():
    assert scales.TIGHTENING == ("brow_lowering", "orbital_tightening", "levator")
    assert set(scales.CueAttributes.__annotations__) == {*scales.TIGHTENING, "eye_closure"}
    assert set(scales.CueAttributes.__annotations__) <= set(M.CUE_NAMES)


@pytest.mark.parametrize("cue", [c for c in M.CUES if c.tightening], ids=lambda c: c.name)
def test_each_tightening_cue_alone_makes_the_cpot_face_tense(cue):
    """From a face.Cues and from the dict the station keeps (a reading's cues): the same item."""
    values = {k: 0.0 for k in M.CUE_FIELDS} | {cue.name: 0.6}
    assert scales.face_item("cpot", F.Cues(**values)).score == 1
    assert scales.face_item("cpot", M.CueValues(**values).model_dump()).score == 1


def test_the_cues_commands_columns_are_the_registrys_on_a_real_still():
    table, as_json = io.StringIO(), io.StringIO()
    assert print_cues(data("single_face.jpg"), image=True, out=table) == 0
    assert print_cues(data("single_face.jpg"), image=True, as_json=True, out=as_json) == 0
    header, row = table.getvalue().splitlines()[:2]
    rec = json.loads(as_json.getvalue().splitlines()[0])
    assert header.split() == ["frame", "face", *(c.header for c in (*M.CUES, M.PSPI)), "explanation"]
    assert row.split()[2:2 + len(M.CUE_FIELDS)] == [f"{rec[k]:.2f}" for k in M.CUE_FIELDS]  # each under its header
