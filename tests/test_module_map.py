"""The README's module map matches the tree: every module and package of painedge/ is listed, nothing else is."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT

PKG = ROOT / "painedge"


def _map_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("    painedge/\n")
    end = text.index("\n\n", start)
    return text[start:end].splitlines()[1:]


def _listed() -> set[str]:
    """Paths named at the start of a map line ('face/', 'face/mesh.py' under face/, 'bench_report.py')."""
    out, parent = set(), ""
    for line in _map_block():
        m = re.match(r"^( {6}| {8})([A-Za-z_]+(?:\.py|/))\s", line + " ")
        if not m:
            continue
        name = m.group(2)
        if len(m.group(1)) == 6:
            parent = name if name.endswith("/") else ""
            out.add(name)
        else:
            out.add(parent + name)
    return out


def _tree() -> set[str]:
    out = set()
    for p in PKG.iterdir():
        if p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py"):
            out.add(p.name)
        elif p.is_dir() and (p / "__init__.py").exists():
            out.add(p.name + "/")
    return out


def test_every_module_of_the_package_is_in_the_readme_map_and_nothing_else():
    listed = {n for n in _listed() if "/" not in n.rstrip("/")}
    data_folders = {n for n in listed - _tree() if n.endswith("/") and (PKG / n).is_dir()}  # models/: the shipped model
    assert listed - data_folders == _tree(), \
        f"missing from the map: {sorted(_tree() - listed)}; not in the tree: {sorted(listed - _tree() - data_folders)}"


def _entries() -> dict[str, str]:
    """Each top-level entry of the map ('config/', 'gate.py') with all its text, sub-lines included."""
    out: dict[str, str] = {}
    name = ""
    for line in _map_block():
        m = re.match(r"^ {6}([A-Za-z_]+(?:\.py|/))\s", line + " ")
        if m:
            name = m.group(1)
        out[name] = out.get(name, "") + line + "\n"
    return out


@pytest.mark.parametrize("package", sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").exists()))
def test_each_packages_modules_are_each_named_in_its_entry(package):
    """A package's entry names every module in it, as a line of its own or in its text ('settings.py (...)')."""
    text = _entries()[package + "/"]
    named = set(re.findall(r"(?<![/\w.])([a-z_0-9]+\.py)\b", text))
    assert named == {p.name for p in (PKG / package).glob("*.py") if p.name != "__init__.py"}


def test_every_test_named_slow_exists():
    """tests/conftest.py marks single tests slow by name: a renamed test would silently run in `make test-fast`."""
    from .conftest import SLOW_TESTS

    tests = ROOT / "tests"
    missing = [entry for entry in sorted(SLOW_TESTS)
               if f"def {entry.split('::')[1]}(" not in (tests / entry.split("::")[0]).read_text()]
    assert missing == []


def test_no_module_grows_back_into_a_hub():
    """Issue 14's limits: no module over 400 lines, cli.py under 300 (it parses and calls), the daemon class under 150."""
    import ast

    sizes = {p.relative_to(PKG).as_posix(): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert sizes["cli.py"] < 300
    service = next(n for n in ast.parse((PKG / "service.py").read_text()).body
                   if isinstance(n, ast.ClassDef) and n.name == "Service")
    assert service.end_lineno is not None and service.end_lineno - service.lineno + 1 < 150
