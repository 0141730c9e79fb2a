"""cli.py: every command's parsed arguments reach its library function, flags map to settings, errors are one line."""

from __future__ import annotations

import argparse
import inspect

import pytest

from painedge import cli
from painedge.config import ConfigError

from .incli import run_cli

# One command line per subcommand (and both bench modes): each is parsed and matched to its function.
COMMANDS = [
    ["cues", "clip.mp4", "--json", "--image", "--population", "--max-frames", "3"],
    ["run", "--source", "demo", "--max-frames", "5", "--duration", "1", "--exit-at-end", "--show"],
    ["preview", "--listen", "127.0.0.1:8090", "--no-gate", "--fast", "--no-loop"],
    ["demo", "--duration", "3", "--interval", "1", "--metrics", "127.0.0.1:9999"],
    ["listen", "--connect", "tcp://127.0.0.1:5556", "--key", "k", "--server-key", "s", "--json", "--count", "1",
     "--kinds", "alert", "--interval", "1", "--seconds", "2", "--idle-exit", "1", "--lines", "--stale-after", "2"],
    ["station", "--connect", "tcp://127.0.0.1:5556", "--http", "127.0.0.1:1", "--db", "x.db", "--config", "s.toml",
     "--ack-timeout", "30", "--stale-after", "5"],
    ["bench", "--frames", "10", "--seconds", "1", "--warmup", "0", "--threads", "2", "--compare-model", "m.tflite",
     "--json", "-", "--csv", "r.csv", "--plot", "r.png"],
    ["bench", "--project", "nano"],
    ["keys", "generate", "bed-1", "--dir", "/tmp", "--force"],
    ["config", "check", "--config", "x.toml", "--device-id", "bed-2"],
    ["schema", "--out", "s.json"],
    ["synth", "out.mp4", "--face", "astronaut", "--fps", "10", "--seconds", "2"],
    ["train", "--out", "runs/x", "--same-person", "a,b", "--dataset", "unbc", "/data", "--dataset-fps", "25"],
    ["train", "--out", "runs/x", "--faces", "astronaut", "--episodes", "pain=0.5,calm=0.5", "--boost-rounds", "2"],
    ["export", "runs/x", "--out", "m.tflite", "--name", "n", "--version", "2"],
    ["model", "info", "m.tflite", "--json"],
    ["model", "verify", "m.tflite", "--clip", "c.mp4", "--float", "m.keras", "--max-frames", "9", "--min-agreement", "0.9"],
    ["explain", "c.mp4", "--frame", "3", "--float", "m.keras", "--out", "g.png"],
    ["evaluate", "labels.json", "--config", "x.toml", "--model", "m.tflite", "--json", "-", "--plot", "p.png"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_every_parsed_argument_reaches_the_commands_function(argv):
    args = cli.build_parser().parse_args(argv)
    fn = args.func.function()
    made = {name: (lambda a: object()) for name in args.func.made}  # settings are not loaded here
    kwargs, unused = cli.call_arguments(fn, args, made)
    assert unused == set(), f"{argv[0]}: {sorted(unused)} parsed but not passed to {args.func.target}"
    assert set(kwargs) <= set(inspect.signature(fn).parameters)


def test_every_subcommand_is_in_the_table():
    # argparse has no public list of a parser's subcommands
    sub = next(a for a in cli.build_parser()._actions  # noqa: SLF001
               if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    assert set(sub.choices) == {argv[0] for argv in COMMANDS}


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run"], {}),
        (["run", "--pub", ""], {}),  # an empty --pub is not given (the default stays)
        (["run", "--replay", ""], {("publish", "replay"): ""}),  # an empty --replay turns the replay service off
        (["run", "--metrics", "off"], {("metrics", "enabled"): False}),
        (["run", "--metrics", "127.0.0.1:1"], {("metrics", "listen"): "127.0.0.1:1"}),
        (["run", "--fast", "--no-loop", "--no-gate"], {("source", "realtime"): False, ("source", "loop"): False,
                                                       ("gate", "enabled"): False}),
        (["run", "--device-id", "bed-9", "--source", "x.mp4"], {("device_id",): "bed-9", ("source", "source"): "x.mp4"}),
    ],
)
def test_run_flags_set_their_settings(argv, expected, monkeypatch):
    monkeypatch.delenv("PAINEDGE_CONFIG", raising=False)
    def settings(argv: list[str]):  # what `run` is handed: its settings, made from the parsed flags
        args = cli.build_parser().parse_args(argv)
        return args.func.made["settings"](args)

    s, defaults = settings(argv), settings(["run"])
    for loc, value in expected.items():
        got = s
        for k in loc:
            got = getattr(got, k)
        assert got == value, loc
    assert (s == defaults) == (not expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--source", ""], "painedge: error: flag --source: source.source: is empty"),
        (["config", "check", "--config", "/nonexistent/painedge.toml"],
         "painedge: error: /nonexistent/painedge.toml: no such config file"),
        (["schema", "--out", "/nonexistent/s.json"],
         "painedge: error: /nonexistent/s.json: cannot write the schema (No such file or directory); name a file in"),
        (["keys", "generate", "bed-1", "--dir", "/proc/painedge-keys"],
         "painedge: error: /proc/painedge-keys: cannot write the key pair ("),
        (["listen", "--key", "k"], "painedge: error: CURVE needs both --key"),
        (["listen", "--key", "/nonexistent/s.key_secret", "--server-key", "/nonexistent/bed.key"],
         "painedge: error: /nonexistent/s.key_secret: no such key file (create one with `painedge keys generate`)"),
        (["listen", "--kinds", "bogus"],
         "painedge: error: --kinds bogus: 'bogus' is not a message kind; kinds are reading, alert, heartbeat, status (comma-separated)"),
        (["listen", "--kinds", "alert,readings"], "painedge: error: --kinds alert,readings: 'readings' is not"),
    ],
)
def test_a_users_error_is_one_line_and_exit_status_2(argv, message, capsys, monkeypatch):
    p = run_cli(argv, capsys, monkeypatch)
    assert p.status == 2 and p.err.startswith(message) and p.err.count("\n") == 1, p.err


# Station configs that are refused before anything opens (no database, no socket): {tmp} is the test's folder.
STATION = 'connect = ["tcp://127.0.0.1:1"]\ndb = "{tmp}/station.db"\n'


@pytest.mark.parametrize(
    "config, message",
    [
        (STATION + 'client_key = "{tmp}/gone.key_secret"\nserver_key = "{tmp}/bed.key"\n',
         "painedge: error: {tmp}/gone.key_secret: no such key file (create one with `painedge keys generate`)"),
        (STATION + 'client_key = "{tmp}/station.key_secret"\nserver_key = "{tmp}/gone.key"\n',
         "painedge: error: {tmp}/gone.key: no such key file; server_key is the other side's public .key file"),
        (STATION + 'server_key = "{tmp}/bed.key"\n',
         "painedge: error: CURVE needs both client_key (this station's .key_secret) and server_key"),
        ('db = "{tmp}/station.db"\n', "painedge: error: no devices: give --connect"),
    ],
)
def test_a_station_config_error_is_one_line_and_exit_status_2(config, message, tmp_path, capsys, monkeypatch):
    from painedge.security import generate_keys

    generate_keys(tmp_path, "station")
    generate_keys(tmp_path, "bed")
    (tmp_path / "station.toml").write_text(config.format(tmp=tmp_path))
    p = run_cli(["station", "--config", str(tmp_path / "station.toml")], capsys, monkeypatch)
    assert p.status == 2 and p.err.startswith(message.format(tmp=tmp_path)) and p.err.count("\n") == 1, p.err
    assert not (tmp_path / "station.db").exists()


def test_debug_shows_the_traceback_of_a_users_error(capsys, monkeypatch):
    with pytest.raises(ConfigError, match="is empty"):
        run_cli(["--debug", "run", "--source", ""], capsys, monkeypatch)
