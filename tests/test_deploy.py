"""Deployment files: systemd units (systemd-analyze verify), the install script, Prometheus and Grafana files."""

from __future__ import annotations

import configparser
import time
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _verify(unit: Path, tmp_path: Path, stubs: dict[str, str], as_name: str | None = None) -> subprocess.CompletedProcess:
    """systemd-analyze verify on a copy whose absolute program paths point at stub executables (the
    Jetson's /opt/painedge and /usr/bin/docker do not exist here; everything else is verified as is)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (.ci/run does)")
    text = unit.read_text()
    for path in stubs:
        stub = tmp_path / "stubs" / Path(path).name
        stub.parent.mkdir(exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        text = text.replace(path, str(stub))
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    for name, body in stubs.items():
        if name.endswith(".service"):
            (units / name).write_text(body)
    copy = units / (as_name or unit.name)
    copy.write_text(text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"}
    return subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, env=env, timeout=60)


def test_native_unit_verifies(tmp_path):
    r = _verify(DEPLOY / "painedge.service", tmp_path, {"/opt/painedge/venv/bin/painedge": ""})
    assert r.returncode == 0, r.stderr


def test_docker_unit_verifies(tmp_path):
    r = _verify(DEPLOY / "painedge-docker.service", tmp_path,
                {"/usr/bin/docker": "", "docker.service": "[Unit]\nDescription=stub\n[Service]\nExecStart=/bin/true\n"})
    assert r.returncode == 0, r.stderr


def test_template_unit_verifies_as_an_instance(tmp_path):
    r = _verify(DEPLOY / "painedge@.service", tmp_path, {"/opt/painedge/venv/bin/painedge": ""},
                as_name="painedge@bed-12.service")
    assert r.returncode == 0, r.stderr


def _exposure(unit: Path, tmp_path: Path, name: str | None = None) -> float:
    """systemd-analyze security's overall exposure level of a unit file (0 safe ... 10 unsafe)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (.ci/run does)")
    copy = tmp_path / (name or unit.name)
    copy.write_text(unit.read_text())
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


@pytest.mark.parametrize("unit,name", [("painedge.service", None), ("painedge@.service", "painedge@bed-12.service"),
                                       ("painedge-docker.service", None)])
def test_units_are_rated_ok_by_systemd_analyze_security(unit, name, tmp_path):
    assert _exposure(DEPLOY / unit, tmp_path, name) <= 2.5


_PER_INSTANCE = {"Description", "ExecStart", "User", "StateDirectory", "CacheDirectory", "Environment"}


def test_template_unit_has_the_native_units_settings_but_one_camera_each():
    native, template = _unit("painedge.service")["Service"], _unit("painedge@.service")["Service"]
    assert {k: v for k, v in native.items() if k not in _PER_INSTANCE} == \
        {k: v for k, v in template.items() if k not in _PER_INSTANCE}
    assert template["ExecStart"].endswith("run --config /etc/painedge/%i.toml --device-id %i")
    assert template["StateDirectory"] == "painedge/%i" and template["User"] == "painedge-%i"


def test_native_unit_keeps_the_camera_and_zeromq_within_its_hardening():
    for name in ("painedge.service", "painedge@.service"):
        s = _unit(name)["Service"]
        families = s["RestrictAddressFamilies"].split()
        assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families) and "AF_NETLINK" not in families  # ipc:// and tcp://
        assert "PrivateDevices" not in s and "PrivateUsers" not in s  # would hide the cameras or the video group
        assert s["CapabilityBoundingSet"] == "" and s["UMask"] == "0077" and s["IPAddressAllow"] == "localhost"


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment]
    cp.read_string(re.sub(r"\\\n", " ", (DEPLOY / name).read_text()))
    return cp


def test_native_unit_is_notify_with_watchdog_and_hardened_but_sees_cameras():
    s = _unit("painedge.service")["Service"]
    assert s["Type"] == "notify" and int(s["WatchdogSec"]) > 0 and s["Restart"] == "on-failure"
    assert s["DynamicUser"] == "yes" and "video" in s["SupplementaryGroups"]
    assert s["ProtectSystem"] == "strict" and s["StateDirectory"] == "painedge" and s["NoNewPrivileges"] == "yes"
    assert s["DevicePolicy"] == "closed"
    text = (DEPLOY / "painedge.service").read_text()
    assert "DeviceAllow=char-video4linux rw" in text and "/tmp/argus_socket" in text


def test_docker_unit_does_not_claim_notify():
    s = _unit("painedge-docker.service")["Service"]
    assert s["Type"] == "simple"
    assert "--runtime nvidia" in s["ExecStart"] and "/tmp/argus_socket" in s["ExecStart"]


def test_install_script_parses():
    r = subprocess.run(["bash", "-n", str(DEPLOY / "install.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- Prometheus and Grafana

def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (.ci/run does)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_alerting_rules_and_scrape_config_pass_promtool():
    r = _promtool("check", "rules", str(DEPLOY / "prometheus" / "painedge-rules.yml"))
    assert r.returncode == 0 and "SUCCESS: 6 rules found" in r.stdout, r.stdout + r.stderr
    r = _promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_rules_cover_the_failures_it_should():
    rules = (DEPLOY / "prometheus" / "painedge-rules.yml").read_text()
    for name in ("DeviceDown", "CameraDown", "FaceLostLong", "LowFps", "InferenceSlow", "PainAlertRaised"):
        assert f"alert: Painedge{name}" in rules


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory) -> str:
    """/metrics of a running Service, scraped over HTTP once it has processed frames and updated its rates. In-process
    (the Service's own registry and HTTP server, as `painedge run` serves them): what is exported is the question
    here, not the process."""
    import threading
    import urllib.request

    from painedge.service import RunLimits

    from .daemon import free_port, in_process, metric

    port = free_port()
    svc, sink = in_process(tmp_path_factory.mktemp("live"), RunLimits(duration_s=300), source={"source": "demo"},
                           metrics={"enabled": True, "listen": f"127.0.0.1:{port}"})
    svc.start()
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    try:
        sink.wait_for(lambda ms: sum(m.kind == "reading" for m in ms) >= 3 and any(m.kind == "heartbeat" for m in ms),
                      timeout_s=60)
        deadline = time.monotonic() + 60
        while True:  # until one fps update (once a second) has been made
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
            if metric(text, "painedge_fps", 'kind="processed"') > 0:
                break
            assert time.monotonic() < deadline, "the frame rates were never updated"
            time.sleep(0.2)
    finally:
        svc.request_stop()
        runner.join(10)
        svc.close()
    return text


@pytest.mark.slow
def test_live_metrics_pass_promtool(live_metrics):
    r = _promtool("check", "metrics", stdin=live_metrics)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def _exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.slow
def test_every_dashboard_and_rule_query_names_only_exported_metrics(live_metrics):
    exported = _exported(live_metrics) | {"up"}
    dash = json.loads((DEPLOY / "grafana" / "painedge-dashboard.json").read_text())
    assert dash["__inputs"][0]["type"] == "datasource"
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += re.findall(r"expr: \|?\s*(.+)", (DEPLOY / "prometheus" / "painedge-rules.yml").read_text())
    assert len(exprs) >= 20
    for expr in exprs:
        names = set(re.findall(r"\b(painedge_[a-z_]+|up)\b", expr))
        assert names, expr
        assert names <= exported, f"{expr}: {sorted(names - exported)} not exported"
    panels = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("frames per second", "latency", "skip ratio", "pain level", "alerts", "camera"):
        assert topic in panels


def test_docker_unit_gives_the_journal_folder_to_the_images_user():
    """Run the unit's own ExecStartPre on a folder as `docker run -v` leaves it (root 0755), then
    write a SQLite journal there as the image's user: the daemon's first act, which failed before."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("needs root and setpriv (util-linux) to act as the container's UID")
    docker = (ROOT / "Dockerfile.jetson").read_text()
    uid, gid = re.search(r"^USER (\d+):(\d+)$", docker, re.M).groups()
    s = _unit("painedge-docker.service")["Service"]
    assert f"--user {uid}:{gid}" in s["ExecStart"] and "-v /var/lib/painedge:/var/lib/painedge" in s["ExecStart"]
    text = (DEPLOY / "painedge-docker.service").read_text()
    pre = next(line.split("=", 1)[1] for line in text.splitlines()
               if line.startswith("ExecStartPre=") and "/var/lib/painedge" in line)
    assert pre.startswith("+")  # runs as root whatever the sandbox says
    outer = Path(tempfile.mkdtemp(prefix="painedge-docker-"))  # pytest's tmp_path is 0700 root: UID 10001 cannot pass
    outer.chmod(0o755)
    folder = outer / "var-lib-painedge"
    folder.mkdir(mode=0o755)
    argv = pre[1:].replace("/var/lib/painedge", str(folder)).split()
    try:
        _check_journal_writable_as(uid, gid, folder, argv)
    finally:
        shutil.rmtree(outer)


def _check_journal_writable_as(uid: str, gid: str, folder: Path, pre: list[str]) -> None:
    subprocess.run(pre, check=True, timeout=10)
    st = folder.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (int(uid), int(gid), 0o700)
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "/usr/bin/python3", "-c",
                        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('pragma journal_mode=wal');"
                        " db.execute('create table t (x)'); db.commit()", str(folder / "journal.sqlite3")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "painedge-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_every_dashboard_query_is_filtered_by_the_bed_variable():
    dash = json.loads((DEPLOY / "grafana" / "painedge-dashboard.json").read_text())
    assert [v["name"] for v in dash["templating"]["list"]] == ["bed"]
    for expr in _dashboard_exprs():
        selectors = re.findall(r"\b(painedge_[a-z_]+)(\{[^}]*\})?", expr)
        assert selectors, expr
        for name, braces in selectors:
            assert 'bed=~"$bed"' in braces, f"{name} in {expr}: not filtered by $bed"


@pytest.mark.parametrize("bed,expected", [("bed-12", {"bed-12": 3}), (".*", {"bed-12": 3, "bed-14": 1})])
def test_the_bed_variable_selects_beds_when_prometheus_evaluates_the_query(bed, expected, tmp_path):
    """promtool evaluates the dashboard's pain-level query with $bed as Grafana substitutes it."""
    expr = next(e for e in _dashboard_exprs() if e.startswith("painedge_pain_level"))
    series = {"bed-12": 3, "bed-14": 1}
    inputs = "".join(f"      - series: 'painedge_pain_level{{job=\"painedge\", bed=\"{b}\", instance=\"{b}:9108\"}}'\n"
                     f"        values: '{v} {v} {v}'\n" for b, v in series.items())
    samples = "".join(f"          - labels: 'painedge_pain_level{{job=\"painedge\", bed=\"{b}\", instance=\"{b}:9108\"}}'\n"
                      f"            value: {v}\n" for b, v in expected.items())
    test = (f"rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{inputs}"
            f"    promql_expr_test:\n      - expr: '{expr.replace('$bed', bed)}'\n        eval_time: 2m\n"
            f"        exp_samples:\n{samples}")
    (tmp_path / "t.yml").write_text(test)
    r = _promtool("test", "rules", str(tmp_path / "t.yml"))
    assert r.returncode == 0, test + r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_script_starts(script):
    """The benchmarks are run by hand, not by the suite: at least each one imports what it uses and parses its flags."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout
