#!/usr/bin/env python3
"""Which glibc and libstdc++ a wheel's native libraries really need, and whether a Jetson has them.

A wheel's manylinux tag is a promise, not proof: ai-edge-litert 2.3.0's aarch64
wheel is tagged manylinux_2_27 but its libraries need GLIBC_2.34 and
GLIBCXX_3.4.30. This reads the version needs (``readelf -V``, section
.gnu.version_r) of every ELF file in each wheel of the pinned Jetson sets and
keeps them in deploy/jetson-wheel-symbols.json, so tests can check the sets
against each target without downloading anything.

    python deploy/wheel_symbols.py scan WHEEL...             # print the needs of wheel files
    python deploy/wheel_symbols.py regenerate [--cache DIR]  # pip download the pinned sets, rewrite the JSON
    python deploy/wheel_symbols.py check                     # every target against its set, from the JSON

Exit status of ``check``: 0 when every target's set fits it, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SYMBOLS_JSON = HERE / "jetson-wheel-symbols.json"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64",
             "manylinux_2_31_aarch64", "manylinux_2_34_aarch64", "manylinux_2_35_aarch64", "linux_aarch64")
PYTHON_VERSION = "3.10"


@dataclass(frozen=True)
class Target:
    """A supported Jetson software stack: its C and C++ runtime versions and the pinned set it installs."""

    name: str
    board: str
    glibc: str
    glibcxx: str
    constraints: str  # file under deploy/

    def fits(self, needs: dict[str, str]) -> list[str]:
        """What ``needs`` ({"GLIBC": "2.34", "GLIBCXX": "3.4.30"}) asks beyond this target, in words."""
        out = []
        for key, have in (("GLIBC", self.glibc), ("GLIBCXX", self.glibcxx)):
            want = needs.get(key)
            if want and _v(want) > _v(have):
                out.append(f"{key}_{want} > {have}")
        return out


# JetPack 4.6 (L4T R32.7): Ubuntu 18.04, glibc 2.27, libstdc++ of GCC 8 (GLIBCXX_3.4.25).
# JetPack 6 (L4T R36): Ubuntu 22.04, glibc 2.35, libstdc++ of GCC 12 (GLIBCXX_3.4.30).
TARGETS: dict[str, Target] = {
    "jetpack4.6": Target("jetpack4.6", "Jetson Nano (native, Ubuntu 18.04)", "2.27", "3.4.25",
                         "constraints-jetpack4.txt"),
    "jetpack6": Target("jetpack6", "Jetson Orin Nano (native, Ubuntu 22.04)", "2.35", "3.4.30",
                       "constraints-jetson.txt"),
    # Dockerfile.jetson's python:3.10-slim-bookworm: Debian 12, glibc 2.36, libstdc++ of GCC 12.
    "container": Target("container", "Dockerfile.jetson (Debian bookworm) on either board", "2.36", "3.4.30",
                        "constraints-jetson.txt"),
}

_NEED_FILE = re.compile(r"File:\s*(\S+)")
_NEED_NAME = re.compile(r"Name:\s*([A-Z_]+)_([0-9][0-9.]*)")


def _v(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split("."))


def version_needs(elf: Path) -> dict[str, str]:
    """The highest GLIBC_/GLIBCXX_/CXXABI_/GCC_ version ``elf`` needs from its libraries ({} if none)."""
    out = subprocess.run(["readelf", "-V", "--wide", str(elf)], capture_output=True, text=True, check=True).stdout
    needs: dict[str, str] = {}
    section = out.split(".gnu.version_r", 1)
    if len(section) < 2:
        return needs
    for m in _NEED_NAME.finditer(section[1]):
        key, ver = m.group(1), m.group(2)
        if key in ("GLIBC", "GLIBCXX", "CXXABI", "GCC") and (key not in needs or _v(ver) > _v(needs[key])):
            needs[key] = ver
    return needs


def _is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def scan_wheel(wheel: Path) -> dict[str, Any]:
    """Needs of every ELF file in ``wheel``, their maximum, and whether it carries its own libstdc++."""
    libs: dict[str, dict[str, str]] = {}
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        for info in z.infolist():
            if info.is_dir() or not re.search(r"\.so(\.|$)", info.filename):
                continue
            data = z.read(info)
            if not _is_elf(data):
                continue
            path = Path(tmp) / "lib.so"
            path.write_bytes(data)
            needs = version_needs(path)
            if needs:
                libs[info.filename] = needs
    bundled = any(re.search(r"(^|/)libstdc\+\+[^/]*\.so", name) for name in libs) or _bundles_libstdcxx(wheel)
    total: dict[str, str] = {}
    for needs in libs.values():
        for key, ver in needs.items():
            # a bundled libstdc++ answers the GLIBCXX needs of the wheel's own libraries (auditwheel's RPATH)
            if key in ("GLIBCXX", "CXXABI") and bundled:
                continue
            if key not in total or _v(ver) > _v(total[key]):
                total[key] = ver
    return {"wheel": wheel.name, "needs": total, "bundles_libstdcxx": bundled, "libs": libs}


def _bundles_libstdcxx(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as z:
        return any(re.search(r"(^|/)libstdc\+\+[^/]*\.so", n) for n in z.namelist())


def pins(constraints: Path) -> list[str]:
    return [ln.strip() for ln in constraints.read_text().splitlines() if "==" in ln and not ln.lstrip().startswith("#")]


def _dist(wheel_name: str) -> str:
    return wheel_name.split("-")[0].lower().replace("_", "-")


def download(pin: str, dest: Path) -> Path:
    """``pip download`` one pinned aarch64 CPython 3.10 wheel (no dependencies) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    name = pin.split("==")[0].lower().replace("_", "-")
    version = pin.split("==")[1]
    for w in dest.glob("*.whl"):
        if _dist(w.name) == name and w.name.split("-")[1] == version:
            return w
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--implementation", "cp",
           "--python-version", PYTHON_VERSION, "-d", str(dest), pin]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    for w in dest.glob("*.whl"):
        if _dist(w.name) == name and w.name.split("-")[1] == version:
            return w
    raise FileNotFoundError(f"pip downloaded no wheel for {pin}")


def regenerate(cache: Path, out: Path = SYMBOLS_JSON) -> dict[str, Any]:
    wheels: dict[str, Any] = {}
    for t in TARGETS.values():
        for pin in pins(HERE / t.constraints):
            if pin not in wheels:
                info = scan_wheel(download(pin, cache))
                wheels[pin] = {"wheel": info["wheel"], "needs": info["needs"], "bundles_libstdcxx": info["bundles_libstdcxx"]}
    # ai-edge-litert 2.3.0 stays in the table even where no set pins it: it is why JetPack 4.6 needs another runtime.
    for pin in ("ai-edge-litert==2.3.0", "tflite-runtime==2.13.0", "tflite-runtime==2.14.0"):
        if pin not in wheels:
            info = scan_wheel(download(pin, cache))
            wheels[pin] = {"wheel": info["wheel"], "needs": info["needs"], "bundles_libstdcxx": info["bundles_libstdcxx"]}
    doc = {"generated_by": "python deploy/wheel_symbols.py regenerate", "python": PYTHON_VERSION,
           "wheels": dict(sorted(wheels.items()))}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def tag_glibc(wheel_name: str) -> str | None:
    """The oldest glibc any of the wheel's platform tags accepts (None: a pure-Python or non-manylinux wheel)."""
    platforms = wheel_name[:-len(".whl")].split("-")[-1].split(".")
    found = []
    for p in platforms:
        m = re.match(r"manylinux_(\d+)_(\d+)_", p)
        if m:
            found.append(f"{m.group(1)}.{m.group(2)}")
        elif p.startswith(("manylinux2014_", "manylinux2010_", "manylinux1_")):
            found.append({"manylinux2014": "2.17", "manylinux2010": "2.12", "manylinux1": "2.5"}[p.split("_")[0]])
    return min(found, key=_v) if found else None


def check(target: Target, table: dict[str, Any], pinned: list[str]) -> list[str]:
    """One line per pinned wheel that ``target`` cannot install or load ([] when the whole set fits).

    Install: pip takes a wheel only if one of its manylinux tags is at most the
    target's glibc. Load: every version its libraries need is at most the target's.
    """
    problems = []
    for pin in pinned:
        entry = table["wheels"].get(pin)
        if entry is None:
            problems.append(f"{pin}: not in {SYMBOLS_JSON.name} (run deploy/wheel_symbols.py regenerate)")
            continue
        tag = tag_glibc(entry["wheel"])
        if tag is not None and _v(tag) > _v(target.glibc):
            problems.append(f"{pin} ({entry['wheel']}): tagged for glibc {tag} > {target.glibc}, pip will not install it")
            continue
        beyond = target.fits(entry["needs"])
        if beyond:
            problems.append(f"{pin} ({entry['wheel']}): needs {', '.join(beyond)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("wheels", nargs="+", type=Path)
    r = sub.add_parser("regenerate")
    r.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "painedge-jetson-wheels")
    sub.add_parser("check")
    args = ap.parse_args(argv)
    if args.cmd == "scan":
        print(json.dumps([scan_wheel(w) for w in args.wheels], indent=1))
        return 0
    if args.cmd == "regenerate":
        doc = regenerate(args.cache)
        print(f"{SYMBOLS_JSON}: {len(doc['wheels'])} wheels")
        return 0
    table = json.loads(SYMBOLS_JSON.read_text())
    bad = 0
    for t in TARGETS.values():
        problems = check(t, table, pins(HERE / t.constraints))
        print(f"{t.name} ({t.board}; glibc {t.glibc}, GLIBCXX {t.glibcxx}; {t.constraints}): "
              + ("every native library loads" if not problems else f"{len(problems)} wheel(s) cannot load"))
        for p in problems:
            print(f"  {p}")
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
