"""Settings: TOML, environment and flags; errors that name the file, the line and the key."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from painedge import config as C
from painedge.model import DEFAULT_MODEL

from .incli import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_run_without_any_file():
    s = C.load(None, environ={})
    assert s.source.source == "demo" and s.gate.threshold == 0.05 and s.gate.interval_frames == 10
    assert s.publish.pub == "tcp://127.0.0.1:5556" and s.metrics.listen == "127.0.0.1:9108"


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[gate]\ntreshold = 0.1\n', "line 2: gate.treshold: unknown key"),
        ('device_id = "bed 1"\n', "line 1: device_id: String should match pattern"),
        ('\n\n[gate]\ninterval_frames = 0\n', "line 4: gate.interval_frames: Input should be greater than or equal to 1 (got 0)"),
        ('[publish]\npub = "localhost:5556"\n', "line 2: publish.pub: expected tcp://HOST:PORT"),
        ('[metrics]\nlisten = "nowhere:99999"\n', "line 2: metrics.listen: expected HOST:PORT"),
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


# ---------------------------------------------------------------- values that validated and broke the daemon

ok = contextlib.nullcontext()


def refused(message: str):
    return pytest.raises(C.ConfigError, match=re.escape(message))


@pytest.mark.parametrize(
    "toml, expect",
    [
        ("[face]\nbaseline_window_frames = 9000\n", ok),
        ("[face]\nbaseline_window_frames = 1e11\n", refused("line 2: face.baseline_window_frames: Input should be "
                                                            "less than or equal to 9000")),
        ('[state]\ndir = "/tmp/painedge-state"\n', ok),
        ('[state]\ndir = "/tmp/' + "x" * 300 + '"\n', refused("line 2: state.dir: has a name of 300 bytes")),
        ('[state]\ndir = "/tmp/' + "x" * 5000 + '"\n', refused("line 2: state.dir: is 5005 bytes long")),
        ('[state]\ndir = ""\n', refused("line 2: state.dir: is empty")),
        ("[publish]\nheartbeat_s = 0.1\n", ok),
        ("[publish]\nheartbeat_s = 1e-9\n", refused("line 2: publish.heartbeat_s: Input should be greater than or "
                                                    "equal to 0.1")),
        ("[source]\ndemo_fps = 1\n", ok),
        ("[source]\ndemo_fps = 0.0001\n", refused("line 2: source.demo_fps: Input should be greater than or equal to 1")),
        ("[source]\nreconnect_initial_s = 1e30\n", refused("line 2: source.reconnect_initial_s: Input should be less")),
        ("[source]\nreconnect_initial_s = 20\nreconnect_max_s = 10\n",
         refused("source: need reconnect_initial_s <= reconnect_max_s")),
        ("[state]\nretention_rows = 9223372036854775807\n", refused("line 2: state.retention_rows: Input should be less")),
        ('[publish]\npub = "tcp://127.0.0.1:65535"\n', ok),
        ('[publish]\npub = "tcp://127.0.0.1:*"\n', ok),  # ephemeral: ZeroMQ's wildcard, for tests
        ('[publish]\npub = "tcp://[::1]:5556"\n', ok),
        ('[publish]\npub = "tcp://127.0.0.1:99999"\n', refused("line 2: publish.pub: port 99999 is out of range")),
        ('[publish]\nreplay = "tcp://127.0.0.1:99999"\n', refused("line 2: publish.replay: port 99999 is out of range")),
        ('[publish]\npub = "tcp://[1::2::3]:5556"\n', refused("line 2: publish.pub: '[1::2::3]' is not an IPv6 address")),
        ('[publish]\npub = "ipc:///tmp/' + "x" * 120 + '"\n', refused("line 2: publish.pub: an ipc:// path must be")),
        ('[publish]\nreplay = "tcp://127.0.0.1:5556"\n', refused("line 2: publish.replay: is the same endpoint")),
        ('[metrics]\nlisten = "127.0.0.1:99999"\n', refused("line 2: metrics.listen: expected HOST:PORT with a port")),
        ('[metrics]\nlisten = "[::1]:9108"\n', ok),
        ('[metrics]\nlisten = "0.0.0.0:9108"\n', refused("line 2: metrics.listen: /metrics on '0.0.0.0' would show "
                                                         "the pain level")),
        ('[metrics]\nlisten = "0.0.0.0:9108"\n[security]\ninsecure = true\n', ok),
        ('[metrics]\nenabled = false\nlisten = "0.0.0.0:9108"\n', ok),
        ("[gate]\nthreshold = nan\n", refused("line 2: gate.threshold: Input should be a finite number")),
        ("[face]\nmin_detection_confidence = nan\n", refused("face.min_detection_confidence: Input should be a finite")),
    ],
)
def test_values_that_would_break_the_daemon_are_refused_at_their_line(tmp_path, toml, expect):
    f = tmp_path / "painedge.toml"
    f.write_text(toml)
    with expect as e:
        C.load(f, environ={})
    if e is not None:
        assert str(e.value).startswith(str(f)) and "\n" not in str(e.value)


ALARM_TIMERS = [("alerts", "raise_after_s", 60), ("alerts", "escalate_after_s", 60), ("alerts", "clear_after_s", 600),
                ("alerts", "cooldown_s", 3600), ("assess", "smoothing_s", 10)]


@pytest.mark.parametrize("section, key, most", ALARM_TIMERS)
@pytest.mark.parametrize(
    "value, expect",
    [
        ("0", ok),
        ("MOST", ok),
        ("inf", refused("Input should be a finite number")),
        ("+inf", refused("Input should be a finite number")),
        ("nan", refused("Input should be a finite number")),
        ("1e308", refused("Input should be less than or equal to")),
        (str(2**63), refused("Input should be less than or equal to")),
        ("-1", refused("Input should be greater than or equal to 0")),
    ],
)
def test_alarm_timers_have_clinical_bounds(tmp_path, section, key, most, value, expect):
    f = tmp_path / "painedge.toml"
    f.write_text(f"[{section}]\n{key} = {value.replace('MOST', str(most))}\n")
    with expect:
        C.load(f, environ={})
    with expect:  # the same through the environment, blamed on the variable
        C.load(None, environ={f"PAINEDGE_{section.upper()}__{key.upper()}": value.replace("MOST", str(most))})


# ---------------------------------------------------------------- the loader itself


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PAINEDGE_GATE": "1", "PAINEDGE_GATE__THRESHOLD": "0.1"},
         "environment PAINEDGE_GATE__THRESHOLD: conflicts with PAINEDGE_GATE"),
        ({"PAINEDGE_GATE__THRESHOLD": "0.1", "PAINEDGE_GATE": "1"},  # the other order: same answer
         "environment PAINEDGE_GATE__THRESHOLD: conflicts with PAINEDGE_GATE"),
        ({"PAINEDGE_GATE__THRESHOLD": "0.1", "PAINEDGE_gate__threshold": "0.2"},
         "environment PAINEDGE_gate__threshold: conflicts with PAINEDGE_GATE__THRESHOLD"),
        ({"PAINEDGE_GATE__": "1"}, "environment PAINEDGE_GATE__: not a setting name"),
        ({"PAINEDGE_GATE": "1"}, "environment PAINEDGE_GATE: gate: Input should be a valid dictionary"),
        ({"PAINEDGE_GATE": "{threshold = -1}"}, "environment PAINEDGE_GATE: gate.threshold: Input should be greater"),
        ({"PAINEDGE_GATE__TRESHOLD": "1"}, "environment PAINEDGE_GATE__TRESHOLD: gate.treshold: unknown key"),
        ({"PAINEDGE_ALERTS__RAISE_AFTER_S": "[" * 3000}, "environment PAINEDGE_ALERTS__RAISE_AFTER_S: alerts.raise_"),
        ({"PAINEDGE_DEVICE_ID": "x" * 2_000_000}, "environment PAINEDGE_DEVICE_ID: device_id: String should match"),
    ],
)
@pytest.mark.parametrize("with_file", [True, False])
def test_environment_errors_name_the_variable_never_the_file(tmp_path, env, message, with_file):
    f = tmp_path / "painedge.toml"
    f.write_text('device_id = "bed-3"\n[gate]\nthreshold = 0.1\n')  # fine: never to be blamed
    with pytest.raises(C.ConfigError) as e:
        C.load(f if with_file else None, environ=env)
    text = str(e.value)
    assert text.startswith(message) and "\n" not in text and len(text) < 400, text
    assert "line" not in text and "defaults" not in text and str(f) not in text


@pytest.mark.parametrize(
    "content, message",
    [
        (b"v = " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"v = " + b"{a = " * 3000 + b"1" + b"}" * 3000, "nested too deeply"),
        (b"[source]\nstall_after_s = " + b"1" * 5000 + b"\n", "an integer too long to read"),
        (b'device_id = "' + b"x" * 900_000 + b'"\n', "line 1: device_id: String should match pattern"),
        (b'[state]\ndir = "' + b"x" * 900_000 + b'"\n', "line 2: state.dir: is 900000 bytes long"),
        (b"x" * (2 << 20), "too large for a painedge config"),
        (b"device_id = \"b\xe9d\"\n", "not UTF-8 text"),
        (b"[gate]\n" + b"".join(b"k%d = 1\n" % i for i in range(6000)), "line 2: gate.k0: unknown key"),
        # No backtracking line search: one quadratic in the line's length would make ~8e10 steps here and meet the timeout.
        pytest.param(b"v = [\n[" + b" " * 400_000 + b"1,\n],\n]\n", "line 1: v: unknown key",
                     marks=pytest.mark.timeout(60), id="no-backtracking-line-search"),
    ],
)
def test_hostile_files_get_one_short_line(tmp_path, content, message):
    """Each refused by the check made for it (the message says which: the size cap before parsing, the nesting
    limit, the line found without a backtracking search), in one short line."""
    f = tmp_path / "painedge.toml"
    f.write_bytes(content)
    with pytest.raises(C.ConfigError) as e:
        C.load(f, environ={})
    text = str(e.value)
    assert text.startswith(str(f)) and message in text, text[:300]
    assert "\n" not in text and len(text) < 1000  # a 2 MB value is never echoed whole; 6,000 errors are not listed


def test_many_errors_are_counted_not_listed(tmp_path):
    f = tmp_path / "painedge.toml"
    f.write_text("[gate]\n" + "".join(f"k{i} = 1\n" for i in range(6000)))
    with pytest.raises(C.ConfigError, match=r"gate\.k4: unknown key .*; and 5995 more$"):
        C.load(f, environ={})


@pytest.mark.parametrize(
    "path, environ, message",
    [
        ("", {}, "--config '': the empty path is not a file"),
        (None, {"PAINEDGE_CONFIG": ""}, "environment PAINEDGE_CONFIG is empty"),
        ("TMP", {}, "is a folder, expected a TOML file"),
        ("/dev/zero", {}, "/dev/zero: not a regular file"),
        ("/tmp/" + "x" * 5000, {}, "cannot read (File name too long)"),
        ("/nonexistent/painedge.toml", {}, "/nonexistent/painedge.toml: no such config file"),
    ],
)
def test_config_paths_that_are_no_file_say_so(tmp_path, path, environ, message):
    with pytest.raises(C.ConfigError) as e:
        C.load(str(tmp_path) if path == "TMP" else path, environ=environ)
    assert message in str(e.value) and "/etc/painedge" not in str(e.value)


def test_a_flag_is_blamed_on_the_flag():
    with pytest.raises(C.ConfigError, match=r"^flag --pub: publish\.pub: expected tcp://"):
        C.load(None, {"publish": {"pub": "nowhere"}}, environ={}, flags={("publish", "pub"): "--pub"})


# ---------------------------------------------------------------- the example file is the defaults

EXAMPLE = ROOT / "deploy" / "painedge.example.toml"


def test_the_example_file_is_generated_from_the_settings_model():
    assert EXAMPLE.read_text() == C.example_toml(), "regenerate it: painedge config example > deploy/painedge.example.toml"


def test_the_example_file_parses_back_to_the_defaults():
    assert C.load(EXAMPLE, environ={}) == C.load(None, environ={}) == C.Settings()


def _fields() -> list[tuple[str | None, str, object]]:
    rows: list[tuple[str | None, str, object]] = []
    for name, value in C.Settings():
        if isinstance(value, C.Section):
            rows += [(name, key, v) for key, v in value]
        else:
            rows.append((None, name, value))
    return rows


def example_gaps(text: str) -> list[str]:
    """Keys an example text does not set to their default (or, for a key with no default, show commented out)."""
    data = tomllib.loads(text)
    gaps = []
    for section, key, default in _fields():
        table = data if section is None else data.get(section, {})
        field = (C.Settings if section is None else type(getattr(C.Settings(), section))).model_fields[key]
        if default is None or (field.json_schema_extra or {}).get("commented"):
            ok_here = key not in table and f"\n# {key} = " in text
        else:
            ok_here = table.get(key) == (str(default) if isinstance(default, Path) else default)
        if not ok_here:
            gaps.append(f"{section}.{key}" if section else key)
    return gaps


@pytest.mark.parametrize("section, key, default", _fields())
def test_every_setting_has_a_description_for_the_example(section, key, default):
    field = (C.Settings if section is None else type(getattr(C.Settings(), section))).model_fields[key]
    assert field.description and len(field.description) > 10, f"{key} needs a description= (the example's comment)"


@pytest.mark.parametrize("section", [n for n, v in C.Settings() if isinstance(v, C.Section)])
def test_every_section_has_a_description_for_the_example(section):
    assert len(C.Settings.model_fields[section].description or "") > 10, f"[{section}] needs a docstring"
    assert f"\n[{section}]\n# {C.Settings.model_fields[section].description}\n" in C.example_toml()


def test_settings_import_nothing_from_the_run_time():
    """Loading or checking settings never imports the model, the camera or the sockets (nor numpy or OpenCV)."""
    code = ("import sys; import painedge.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'cv2', 'zmq', 'mediapipe') "
            "or (m.startswith('painedge.') and not m.startswith('painedge.config'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_settings_default_model_is_the_shipped_one():
    assert C.DEFAULT_MODEL == DEFAULT_MODEL and C.Settings().model.path == DEFAULT_MODEL


@pytest.mark.parametrize(
    "edit, gaps",
    [
        (lambda t: t, []),
        (lambda t: t.replace("\nenabled = true\n# raise at", "\n# raise at"), ["alerts.enabled"]),  # [alerts] enabled
        (lambda t: t.replace("raise_after_s = 3.0", "raise_after_s = 30.0"), ["alerts.raise_after_s"]),
        (lambda t: t.replace("# dir = ", "dir = "), ["state.dir"]),
        (lambda t: t.replace("[gate]", "[gate]\nthreshold = 0.05").replace("\nthreshold = 0.05\n# every", "\n# every"),
         []),  # moved, not removed
    ],
)
def test_the_committed_example_sets_every_key_to_its_default(edit, gaps):
    assert example_gaps(edit(EXAMPLE.read_text())) == gaps


# ---------------------------------------------------------------- one check for `config check` and `run`


def _secret_key(tmp_path: Path) -> Path:
    from painedge.security import generate_keys

    _public, secret = generate_keys(tmp_path / "keys", "bed")
    (tmp_path / "stations").mkdir()
    return secret


@pytest.mark.parametrize(
    "env, expect",
    [
        ({}, ok),
        ({"PAINEDGE_PUBLISH__PUB": '"tcp://0.0.0.0:5556"'}, pytest.raises(C.ConfigError, match="refusing to publish on "
                                                                                               "tcp://0.0.0.0:5556")),
        ({"PAINEDGE_PUBLISH__PUB": '"tcp://0.0.0.0:5556"', "PAINEDGE_SECURITY__INSECURE": "true"}, ok),
        ({"PAINEDGE_SECURITY__SERVER_SECRET_KEY": '"TMP/keys/bed.key_secret"',
          "PAINEDGE_SECURITY__ALLOWED_CLIENTS_DIR": '"TMP/stations"'}, ok),
        ({"PAINEDGE_SECURITY__SERVER_SECRET_KEY": '"TMP/keys/nope.key_secret"',
          "PAINEDGE_SECURITY__ALLOWED_CLIENTS_DIR": '"TMP/stations"'},
         pytest.raises(C.ConfigError, match=r"security.server_secret_key .*nope.key_secret: no such file")),
        ({"PAINEDGE_SECURITY__SERVER_SECRET_KEY": '"TMP/keys/bed.key_secret"',
          "PAINEDGE_SECURITY__ALLOWED_CLIENTS_DIR": '"TMP/nowhere"'},
         pytest.raises(C.ConfigError, match=r"security.allowed_clients_dir .*nowhere: no such folder")),
        ({"PAINEDGE_MODEL__PATH": '"/usr/share/painedge/models/painedge-edge-int8.tflite"'},  # the old example's
         pytest.raises(C.ConfigError, match="model.path /usr/share/painedge/models/painedge-edge-int8.tflite: no such")),
        ({"PAINEDGE_SOURCE__SOURCE": '"TMP/keys/bed.key"'}, pytest.raises(OSError, match="cannot be opened as a video")),
        ({"PAINEDGE_SOURCE__SOURCE": '"TMP/nothing.mp4"'}, pytest.raises(OSError, match="no such video file")),
        # run refused these while config check said ok
        ({"PAINEDGE_STATE__DIR": '"TMP/keys/bed.key"'}, pytest.raises(C.ConfigError, match="state.dir .*not a folder")),
        ({"PAINEDGE_MODEL__PATH": '"TMP/model/m.tflite"'},
         pytest.raises(C.ConfigError, match="does not match the checksum")),
    ],
)
def test_preflight_refuses_what_run_would_refuse(tmp_path, env, expect):
    _secret_key(tmp_path)
    (tmp_path / "model").mkdir()  # the shipped model with another model's bytes beside its metadata
    (tmp_path / "model" / "m.tflite").write_bytes(b"not the model")
    (tmp_path / "model" / "m.json").write_text(DEFAULT_MODEL.with_suffix(".json").read_text())
    settings = C.load(None, environ={k: v.replace("TMP", str(tmp_path)) for k, v in env.items()})
    with expect:
        C.preflight(settings)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--pub", "tcp://0.0.0.0:5556"], "refusing to publish on tcp://0.0.0.0:5556 without CURVE"),
        (["--metrics", "0.0.0.0:9108"], "flag --metrics: metrics.listen: /metrics on '0.0.0.0' would show"),
        (["--model", "/usr/share/painedge/models/painedge-edge-int8.tflite"],
         "model.path /usr/share/painedge/models/painedge-edge-int8.tflite: no such file"),
        (["--config", "KEYCFG"], "security.server_secret_key TMP/keys/gone.key_secret: no such file"),
    ],
)
def test_config_check_and_run_refuse_the_same_things_in_one_line(tmp_path, flags, message, capfd, monkeypatch):
    (tmp_path / "stations").mkdir()
    cfg = tmp_path / "keys.toml"
    cfg.write_text(f'[security]\nserver_secret_key = "{tmp_path}/keys/gone.key_secret"\n'
                   f'allowed_clients_dir = "{tmp_path}/stations"\n')
    flags = [str(cfg) if f == "KEYCFG" else f for f in flags]
    for command in (["config", "check"], ["run", "--max-frames", "1", "--replay", ""]):
        p = run_cli([*command, *flags], capfd, monkeypatch, PAINEDGE_STATE__DIR=f'"{tmp_path}"')
        lines = p.err.splitlines()
        assert p.status == 2 and len(lines) == 1, (command, p.err[-1500:])
        assert lines[0].startswith("painedge: error: ") and message.replace("TMP", str(tmp_path)) in lines[0], lines


# ---------------------------------------------------------------- optional packages

# Each optional part asks for its package by name when that package is missing. The packages are
# installed here, so the test hides one (sys.modules[name] = None makes Python treat it as absent).
@pytest.mark.parametrize("hidden,call,expect", [
    ("mediapipe", lambda: _preflight_with(PAINEDGE_FACE__BACKEND="mediapipe"),
     "face.backend = \"mediapipe\" needs the mediapipe package, which is not installed: pip install "
     "'painedge[mediapipe]'; or use the default, face.backend = \"litert\" (the same landmarks)"),
    ("mediapipe", lambda: __import__("painedge.landmarks").landmarks.open_mesh("mediapipe"),
     "the mediapipe landmark backend needs the mediapipe package, which is not installed: pip install 'painedge[mediapipe]'"),
    ("mediapipe", lambda: __import__("painedge.bench").bench.command(
        C.load(None, environ={"PAINEDGE_FACE__BACKEND": "mediapipe"}), board="nano"),
     "painedge bench --project with face.backend = \"mediapipe\" needs the mediapipe package, which is not "
     "installed: pip install 'painedge[mediapipe]'"),
    # before the run: the source named does not exist, so a check made after it would never be reached
    ("matplotlib", lambda: __import__("painedge.bench").bench.command(
        C.load(None, environ={"PAINEDGE_SOURCE__SOURCE": "/nonexistent/clip.mp4"}), frames=1, plot="x.png"),
     "painedge bench --plot needs the matplotlib package, which is not installed: pip install 'painedge[plot]'"),
    ("matplotlib", lambda: __import__("painedge.commands.models").commands.models.evaluate_footage(
        "labels.json", C.load(None, environ={}), plot="x.png"),
     "painedge evaluate --plot needs the matplotlib package, which is not installed: pip install 'painedge[plot]'"),
])
def test_a_missing_optional_package_is_named_with_its_extra(monkeypatch, hidden, call, expect):
    monkeypatch.setitem(sys.modules, hidden, None)
    with pytest.raises(Exception) as e:
        call()
    assert str(e.value) == expect
    assert type(e.value).__name__ in ("ConfigError", "UserError")


def _preflight_with(**environ: str) -> None:
    from painedge.config.preflight import preflight

    preflight(C.load(None, environ=environ))


def test_the_default_landmark_backend_needs_no_mediapipe(monkeypatch):
    """With mediapipe absent, the default settings pass preflight and the default backend finds the face."""
    from painedge import face as F
    from painedge.landmarks import open_mesh

    from .conftest import data

    monkeypatch.setitem(sys.modules, "mediapipe", None)
    _preflight_with()
    with open_mesh(static=True) as mesh:
        assert mesh.largest(F.read_image(data("single_face.jpg"))) is not None
