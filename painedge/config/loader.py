"""Loading settings: defaults, then the TOML file, then PAINEDGE_* environment variables, then flags.

Unknown keys are errors. Every error names where the value came from (the file and line, the
environment variable, or the flag) and the key path: an IT person should never read a traceback
for a typo.

Environment: ``PAINEDGE_<SECTION>__<KEY>=value``, e.g. ``PAINEDGE_GATE__THRESHOLD=0.1``,
``PAINEDGE_DEVICE_ID=bed-12``; values are TOML literals (``true``, ``0.1``, ``"text"``) or bare strings.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError, echo, short, shown_path
from .settings import Settings, relations

DEFAULT_CONFIG = Path("/etc/painedge/painedge.toml")
ENV_PREFIX = "PAINEDGE_"
_ENV_NOT_SETTINGS = (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}TEST_DATA")
MAX_CONFIG_BYTES = 1 << 20  # a painedge.toml is a few KiB; more is not one (and /dev/zero must not hang us)
MAX_ERRORS_LISTED = 5  # an error message is one line a person reads: the first few problems, then a count


_KEY = re.compile(r"[A-Za-z0-9_.\-\"' ]+")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each key (and table) of a TOML text is set: its key path -> line number.

    One pass, and no regular expression that can backtrack: string methods and a fullmatch of a
    single character class, so a hostile line costs its length, never its square.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()

    def parts(dotted: str) -> tuple[str, ...]:
        return tuple(p.strip().strip("\"'") for p in dotted.split("."))

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]") and "=" not in line:
            table = parts(line.strip("[]"))
            lines.setdefault(table, n)
            continue
        key, eq, _value = line.partition("=")
        if eq and _KEY.fullmatch(key.strip() or "="):
            lines.setdefault(table + parts(key), n)
    return lines


def _longest_prefix(loc: tuple[str, ...], table: Mapping[tuple[str, ...], Any]) -> Any:
    for i in range(len(loc), 0, -1):
        if loc[:i] in table:
            return table[loc[:i]]
    return None


class Origins:
    """Where each value came from: flags, environment variables, or the file (by line)."""

    def __init__(self, file: str, text: str | None, env: Mapping[tuple[str, ...], str],
                 flags: Mapping[tuple[str, ...], str]) -> None:
        self.file, self.env, self.flags, self.text = file, env, flags, text
        self._lines: dict[tuple[str, ...], int] | None = None

    @property
    def lines(self) -> dict[tuple[str, ...], int]:
        if self._lines is None:  # only when there is an error to place
            self._lines = _key_lines(self.text) if self.text is not None else {}
        return self._lines

    def of(self, loc: tuple[str, ...]) -> str:
        flag = _longest_prefix(loc, self.flags)
        if flag:
            return f"flag {flag}" if flag.startswith("-") else flag
        var = _longest_prefix(loc, self.env)
        if var:
            return f"environment {short(var)}"
        line = _longest_prefix(loc, self.lines)
        return f"{self.file}, line {line}" if line else self.file


def format_problems(problems: list[tuple[tuple[str, ...], str]], origins: Origins) -> str:
    """One line: the first few problems, each with where it came from and its key, then how many more."""
    parts = []
    for loc, msg in problems[:MAX_ERRORS_LISTED]:
        key = ".".join(short(p) for p in loc) or "settings"
        parts.append(f"{origins.of(loc)}: {key}: {msg}")
    if len(problems) > MAX_ERRORS_LISTED:
        parts.append(f"and {len(problems) - MAX_ERRORS_LISTED} more")
    return " ".join("; ".join(parts).splitlines())  # one line, whatever a message quoted


def problem_message(err: Mapping[str, Any], keys_listed_in: str) -> str:
    """One pydantic error as painedge words it: an unknown key says where the keys are listed, a bad value is
    echoed back (short)."""
    if err["type"] == "extra_forbidden":
        return f"unknown key (check the spelling; {keys_listed_in} lists the keys)"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], dict):
        return f"{msg} (got {echo(err['input'])})"
    return msg


def _problems(e: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(str(x) for x in err["loc"]), problem_message(err, "`painedge config show`"))
            for err in e.errors(include_url=False)]


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The settings the environment sets, and which variable set each key path."""
    out: dict[str, Any] = {}
    set_by: dict[tuple[str, ...], str] = {}
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in _ENV_NOT_SETTINGS):
        raw = environ[name]
        path = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if not all(path):
            raise ConfigError(f"environment {short(name)}: not a setting name (PAINEDGE_<SECTION>__<KEY>, e.g. "
                              f"PAINEDGE_GATE__THRESHOLD); unset it")
        for i in range(1, len(path) + 1):
            other = set_by.get(path[:i])
            if other is not None:
                raise ConfigError(f"environment {short(name)}: conflicts with {short(other)}, which sets "
                                  f"{short('.'.join(path[:i]))} as a whole; unset one of them")
        try:
            parsed = tomllib.loads(f"v = {raw}")
            value = parsed["v"] if len(parsed) == 1 else raw
        except (ValueError, RecursionError):  # not a TOML literal (TOMLDecodeError is a ValueError): a bare string
            value = raw
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):  # pragma: no cover  (excluded by the conflict check)
                raise ConfigError(f"environment {short(name)}: conflicts with another PAINEDGE_ variable")
        if path[-1] in node:  # a longer name already set something under this one
            other = next(v for k, v in set_by.items() if k[:len(path)] == path)
            raise ConfigError(f"environment {short(name)}: conflicts with {short(other)}; unset one of them")
        node[path[-1]] = value
        set_by[path] = name
    return out, set_by


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, key by key into nested tables."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _exists(path: Path) -> bool:
    """Whether ``path`` names something; one clear error for a name no file can have."""
    try:
        os.stat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except ValueError:
        raise ConfigError(f"{shown_path(path)!r}: a config path cannot contain a NUL character") from None
    except OSError as e:
        raise ConfigError(f"{shown_path(path)}: cannot read ({e.strerror})") from None


def read_toml(cfg_path: Path) -> tuple[str, dict[str, Any]]:
    where = shown_path(cfg_path)
    try:
        st = cfg_path.stat()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{where}: is a folder, expected a TOML file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where}: not a regular file, expected a TOML file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {st.st_size} bytes is too large for a painedge config (at most "
                          f"{MAX_CONFIG_BYTES // 1024} KiB)")
    try:
        raw = cfg_path.read_bytes()[:MAX_CONFIG_BYTES + 1]
        text = raw.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {short(str(e)) if len(str(e)) > 200 else e}") from None
    except ValueError:  # tomllib lets int() errors through: an integer of over 4,300 digits
        raise ConfigError(f"{where}: not valid TOML for painedge: an integer too long to read") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid TOML for painedge: arrays or tables nested too deeply") from None


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None, flags: Mapping[tuple[str, ...], str] | None = None) -> Settings:
    """Settings from defaults, the TOML file (``path``, else $PAINEDGE_CONFIG, else the default file if it
    exists), the environment and ``overrides`` (from flags, as nested dicts; ``flags`` names the flag that set
    each key path, for messages). Raises ConfigError, one line, for anything wrong."""
    environ = os.environ if environ is None else environ
    if path is not None:
        if str(path) == "":
            raise ConfigError("--config '': the empty path is not a file; give a TOML file, or leave --config out")
        cfg_path, explicit = Path(path), True
    elif f"{ENV_PREFIX}CONFIG" in environ:
        if not environ[f"{ENV_PREFIX}CONFIG"]:
            raise ConfigError("environment PAINEDGE_CONFIG is empty: set it to a TOML file, or unset it")
        cfg_path, explicit = Path(environ[f"{ENV_PREFIX}CONFIG"]), True
    else:
        cfg_path, explicit = DEFAULT_CONFIG, False
    data: dict[str, Any] = {}
    text = None
    origin = "defaults"
    if _exists(cfg_path):
        origin = shown_path(cfg_path)
        text, data = read_toml(cfg_path)
    elif explicit:
        raise ConfigError(f"{shown_path(cfg_path)}: no such config file")
    env, env_locs = _env_overrides(environ)
    data = merge(merge(data, env), overrides or {})
    flag_locs = dict(flags or {})
    for loc in _leaf_paths(overrides or {}):
        flag_locs.setdefault(loc, "a command-line flag")
    origins = Origins(origin, text, env_locs, flag_locs)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_problems(_problems(e), origins)) from None
    except RecursionError:
        raise ConfigError(f"{origin}: values nested too deeply") from None
    problems = relations(settings)
    if problems:
        raise ConfigError(format_problems(problems, origins))
    return settings


def _leaf_paths(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in d.items():
        out += _leaf_paths(v, prefix + (k,)) if isinstance(v, Mapping) else [prefix + (k,)]
    return out


# The run flags that set a setting: (argument, flag, key path). A switch turns its setting off; an empty
# value counts only for --source (an error then) and --replay ("" turns the replay service off).
RUN_FLAG_SETTINGS = (("source", "--source", ("source", "source")), ("fast", "--fast", ("source", "realtime")),
                     ("no_loop", "--no-loop", ("source", "loop")), ("pub", "--pub", ("publish", "pub")),
                     ("replay", "--replay", ("publish", "replay")), ("metrics", "--metrics", ("metrics", "listen")),
                     ("device_id", "--device-id", ("device_id",)), ("model", "--model", ("model", "path")),
                     ("no_gate", "--no-gate", ("gate", "enabled")))


def load_with_flags(path: str | Path | None, given: Mapping[str, Any]) -> Settings:
    """``load`` with the run flags' values by argument name (``RUN_FLAG_SETTINGS``; None or False: not given),
    each flag named in the errors about the key it set."""
    over: dict[str, Any] = {}
    flags: dict[tuple[str, ...], str] = {}
    for dest, flag, loc in RUN_FLAG_SETTINGS:
        value = given.get(dest)
        if value is None or value is False or (value == "" and dest not in ("source", "replay")):
            continue
        if dest == "metrics" and value == "off":
            loc, value = ("metrics", "enabled"), False
        node = over
        for k in loc[:-1]:
            node = node.setdefault(k, {})
        node[loc[-1]] = False if value is True else value
        flags[loc] = flag
    return load(path, over, flags=flags)
