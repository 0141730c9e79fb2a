"""Fuzzing the config surface: whatever a file or the environment holds, the answer is Settings or one line.

Hypothesis generates TOML files (nesting, huge numbers, inf and nan, wrong types, long strings, unknown
keys, broken syntax) and PAINEDGE_* environments (conflicting names, TOML literals, bare strings), and
config.load must answer each with Settings or one ConfigError line naming the file or the variable,
within a second. A handful go through the real CLI, which must exit 2 with one `painedge: error:` line.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from painedge import config as C

from .incli import run_cli

SECTIONS = {name: list(type(section).model_fields) for name, section in C.Settings() if isinstance(section, C.Section)}
TOP_KEYS = [name for name, value in C.Settings() if not isinstance(value, C.Section)]


def _plausible(model: type, key: str, default: object) -> list[object]:
    """The default and the bounds of a field: values that should load (unless a relation forbids them)."""
    out = [default] if default is not None and not isinstance(default, Path) else []
    for m in model.model_fields[key].metadata:
        out += [v for v in (getattr(m, a, None) for a in ("ge", "le", "gt", "lt")) if v is not None]
    return out or ["demo"]


PLAUSIBLE = {(name, key): _plausible(type(section), key, v)
             for name, section in C.Settings() if isinstance(section, C.Section) for key, v in section}

# Derandomised and without a database: the same examples every run, no .hypothesis folder in the repo.
def fuzz(n: int) -> settings:
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))

# ---------------------------------------------------------------- values and their TOML

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63, 2**63 - 1, -(2**63), 10**30, 10**400, 65535, 65536, 99999]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-9, 1e11, 1e30, 1e308, -1e308, 0.0001, 5e-324]),
)
strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["demo", "tcp://127.0.0.1:5556", "tcp://0.0.0.0:99999", "0.0.0.0:9108", "", " ", "/dev/video0",
                     "ipc:///tmp/x", "inproc://x", "gst:videotestsrc ! appsink", "rtsp://u:p@cam/1", "bed-1", "info"]),
    # Long values, far over what a message may echo (hostile sizes, 500 kB, are HOSTILE's below; each escaped
    # character here is six in the TOML text, and 100,000 of them made the TOML parser most of this file's time).
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "/", "é", "\\"]), st.integers(100, 20_000)),
)
scalars = st.one_of(st.booleans(), numbers, strings)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(strings, inner, max_size=4)), max_leaves=12)


def lit(v: object) -> str:
    """A TOML literal for ``v`` (a generated value): inline arrays and tables, quoted keys."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 10**4000 else "1" * 4400  # str() itself refuses over 4,300 digits
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string, except lone surrogates: then the file is invalid TOML
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {lit(x)}" for k, x in v.items()) + "}"


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A TOML text: mostly real sections and keys with generated values, some unknown, some nesting."""
    def mostly(known: list[str]) -> st.SearchStrategy[str]:  # a real key four times in five, else any text
        return st.integers(0, 4).flatmap(lambda i: st.sampled_from(known) if i else strings.filter(bool))

    lines = []
    for key in draw(st.lists(mostly(TOP_KEYS), max_size=2, unique=True)):
        lines.append(f"{json.dumps(key)} = {lit(draw(st.sampled_from(['bed-9', 'info']) | values))}")
    for section in draw(st.lists(mostly(sorted(SECTIONS)), max_size=5, unique=True)):
        lines.append(f"[{json.dumps(section)}]")
        for key in draw(st.lists(mostly(SECTIONS.get(section, ["x"])), max_size=4, unique=True)):
            good = PLAUSIBLE.get((section, key))
            value = draw(st.sampled_from(good)) if good and draw(st.integers(0, 4)) else draw(values)
            lines.append(f"{json.dumps(key)} = {lit(value)}")
    text = "\n".join(lines) + "\n"
    extra = draw(st.sampled_from(["none"] * 6 + ["deep", "unknown", "garbage", "bytes"]))
    if extra == "deep":
        depth = draw(st.integers(1, 5000))
        text = "v = " + "[" * depth + "1" + "]" * depth + "\n" + text
    elif extra == "unknown":
        text += "[gate]\n" + "".join(f"k{i} = {i}\n" for i in range(draw(st.integers(1, 7000))))
    elif extra == "garbage":
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.text(max_size=20)) + text[pos:]
    elif extra == "bytes":
        text = draw(st.text(max_size=200))
    return text


ENV_NAMES = [f"PAINEDGE_{k.upper()}" for k in TOP_KEYS] + [f"PAINEDGE_{s.upper()}" for s in SECTIONS] + [
    f"PAINEDGE_{s.upper()}__{k.upper()}" for s, keys in SECTIONS.items() for k in keys]

environments = st.dictionaries(
    st.one_of(st.sampled_from(ENV_NAMES), st.sampled_from(ENV_NAMES).map(str.lower).map(lambda n: "PAINEDGE_" + n[9:]),
              st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=30).map(lambda n: "PAINEDGE_" + n)),
    st.one_of(values.map(lit), strings).map(lambda v: v.replace("\x00", "")),  # the OS allows no NUL in the environment
    max_size=5,
)


OUTCOMES = {"settings": 0, "error": 0}


def check(path: Path | None, env: dict[str, str]) -> None:
    # CPU time for "over a second" (two cores are shared here: wall time measures the neighbours too),
    # and wall time with room to spare for a hang that burns no CPU (a read that never ends).
    t0, wall0 = time.process_time(), time.monotonic()
    try:
        result = C.load(path, environ=env)
    except C.ConfigError as e:
        OUTCOMES["error"] += 1
        message = str(e)
        assert message and "\n" not in message and len(message) < 2000, message[:500]
        named = (str(path),) if path is not None else (str(C.DEFAULT_CONFIG),)  # if this machine has one
        assert message.startswith((*named, "environment PAINEDGE_")), message[:300]
    else:
        assert isinstance(result, C.Settings)
        OUTCOMES["settings"] += 1
    assert time.process_time() - t0 < 1.0 and time.monotonic() - wall0 < 5.0


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "painedge.toml"


@fuzz(900)
@given(text=documents(), env=st.one_of(st.just({}), st.just({}), environments))
def test_any_file_and_environment_gives_settings_or_one_line(fuzz_file, text, env):
    fuzz_file.write_text(text, errors="surrogatepass")
    check(fuzz_file, env)


def test_the_fuzzing_reached_both_outcomes():
    """Run after the fuzz tests: a generator that only ever made errors (or only valid files) proves little."""
    if not sum(OUTCOMES.values()):
        pytest.skip("run with the fuzz tests above (the whole file)")
    assert OUTCOMES["settings"] >= 50 and OUTCOMES["error"] >= 500, OUTCOMES


@fuzz(400)
@given(env=environments)
def test_any_environment_alone_gives_settings_or_one_line_naming_a_variable(env):
    check(None, env)


# ---------------------------------------------------------------- through the real command line

HOSTILE = [
    ("v = " + "[" * 3000 + "]" * 3000 + "\n", {}),
    ("[gate]\n" + "".join(f"k{i} = 1\n" for i in range(6000)), {}),
    ("[alerts]\nraise_after_s = inf\n", {}),
    ('device_id = "' + "x" * 500_000 + '"\n', {}),
    ("[source]\nstall_after_s = " + "9" * 5000 + "\n", {}),
    ("", {"PAINEDGE_GATE": "1", "PAINEDGE_GATE__THRESHOLD": "0.1"}),
]


@pytest.mark.parametrize("text, env", HOSTILE, ids=["deep", "6000-keys", "inf-timer", "long-value", "huge-int", "env"])
def test_config_check_answers_hostile_input_with_one_error_line(tmp_path, text, env, capsys, monkeypatch):
    f = tmp_path / "painedge.toml"
    f.write_text(text)
    p = run_cli(["config", "check", "--config", str(f)], capsys, monkeypatch, **env)
    assert p.status == 2 and p.out == "", p.err[-2000:]
    lines = p.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("painedge: error: ") and "Traceback" not in p.err, p.err[-2000:]
    assert str(f) in lines[0] or "environment PAINEDGE_" in lines[0]
    assert len(lines[0]) < 2000  # not 6,000 errors, not a 500 kB value echoed back
