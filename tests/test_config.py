"""Settings: TOML, environment and flags; errors that name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from painedge import config as C

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_run_without_any_file():
    s = C.load(None, environ={})
    assert s.source.source == "demo" and s.gate.threshold == 0.05 and s.gate.interval_frames == 10
    assert s.publish.pub == "tcp://127.0.0.1:5556" and s.metrics.listen == "127.0.0.1:9108"


def test_the_example_config_is_valid_and_complete():
    example = ROOT / "deploy" / "painedge.example.toml"
    s = C.load(example, environ={})
    assert s.device_id == "bed-1"
    shown = C.to_toml(C.load(None, environ={}))
    for line in shown.splitlines():  # every key painedge has is in the example
        if "=" in line and not line.startswith("path"):
            assert line.split("=")[0].strip() in example.read_text(), line


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[gate]\ntreshold = 0.1\n', "line 2: gate.treshold: unknown key"),
        ('device_id = "bed 1"\n', "line 1: device_id: String should match pattern"),
        ('\n\n[gate]\ninterval_frames = 0\n', "line 4: gate.interval_frames: Input should be greater than or equal to 1 (got 0)"),
        ('[publish]\npub = "localhost:5556"\n', "line 2: publish.pub: Value error, expected tcp://HOST:PORT"),
        ('[metrics]\nlisten = "nowhere:99999"\n', "line 2: metrics.listen: Value error, expected HOST:PORT"),
        ('[source]\nsource = 3\n', "line 2: source.source: Input should be a valid string"),
        ('[source\n', "not valid TOML"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path, toml, message):
    f = tmp_path / "painedge.toml"
    f.write_text(toml)
    with pytest.raises(C.ConfigError) as e:
        C.load(f, environ={})
    assert str(e.value).startswith(str(f))
    assert message in str(e.value)


def test_environment_overrides_the_file_and_flags_override_both(tmp_path):
    f = tmp_path / "painedge.toml"
    f.write_text('device_id = "from-file"\n[gate]\nthreshold = 0.2\n')
    env = {"PAINEDGE_GATE__THRESHOLD": "0.3", "PAINEDGE_DEVICE_ID": "from-env", "PAINEDGE_SOURCE__LOOP": "false"}
    s = C.load(f, {"device_id": "from-flag"}, environ=env)
    assert s.gate.threshold == 0.3 and s.device_id == "from-flag" and s.source.loop is False


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(C.ConfigError, match="environment PAINEDGE_GATE__THRESHOLD: gate.threshold"):
        C.load(None, environ={"PAINEDGE_GATE__THRESHOLD": "-1"})


def test_a_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(C.ConfigError, match="no such config file"):
        C.load(tmp_path / "nope.toml", environ={})


def test_show_round_trips(tmp_path):
    s = C.load(None, {"device_id": "bed-7", "gate": {"threshold": 0.1}}, environ={})
    f = tmp_path / "shown.toml"
    f.write_text(C.to_toml(s))
    assert C.load(f, environ={}) == s
