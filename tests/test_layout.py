"""The package layout: no import cycles, Flask only in web/, modules of readable size, a module map that matches."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

PACKAGE = ROOT / "weather_metrics"
# The factory wires Flask to everything else: it and web/ may import the framework.
FRAMEWORK = ("flask", "flask_limiter", "flask_sock", "werkzeug", "prometheus_flask_exporter", "simple_websocket")
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """The project modules a file imports, anywhere in it; `from pkg import sub` counts as `pkg.sub`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as the modules around it."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_the_import_graph_has_no_cycle() -> None:
    cycles = find_cycles({name: imported(path) for name, path in MODULES.items()})
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_cycles_through_a_package_init() -> None:
    """A package __init__ that imports its route modules, which import the package back, is a cycle."""
    init = PACKAGE / "web" / "v1" / "__init__.py"
    assert "weather_metrics.web.v1.events" in imported(init)
    graph = {"pkg": {"pkg.routes"}, "pkg.routes": {"pkg"}, "pkg.blueprint": set()}
    assert find_cycles(graph) == [["pkg", "pkg.routes", "pkg"]]
    assert find_cycles({"pkg": {"pkg.routes"}, "pkg.routes": {"pkg.blueprint"}, "pkg.blueprint": set()}) == []


def is_web(module: str) -> bool:
    return module == "weather_metrics.web" or module.startswith("weather_metrics.web.")


def test_only_the_factory_and_web_import_the_web_framework() -> None:
    """Domain code raises its own errors and knows nothing of HTTP: neither Flask nor the web package."""
    offenders = []
    for name, path in MODULES.items():
        if name == "weather_metrics.factory" or name.startswith("weather_metrics.web"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [
                f"{name}: {n}"
                for n in names
                if n.split(".")[0] in FRAMEWORK or (n + ".").startswith("weather_metrics.web.")
            ]
    assert not offenders


def test_modules_stay_readable() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_readme_module_map_matches_the_tree() -> None:
    """Every module and package of the tree appears in the README's map, and nothing else does."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- module map -->", 2)[1]
    mapped: set[str] = set()
    folder: list[str] = []
    for line in block.split("```")[1].splitlines():
        indent = len(line) - len(line.lstrip(" "))
        entries = line.strip().split("  ")[0]  # the names, before the description
        if not entries:
            continue
        folder = folder[: indent // 2]
        if entries.endswith("/"):
            folder.append(entries.rstrip("/"))
            mapped.add("/".join(folder))
            continue
        mapped.update("/".join(folder + [name.strip()]) for name in entries.split(","))
    actual = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"} | {
        "weather_metrics/__init__.py"
    }
    actual |= {str(p.parent.relative_to(ROOT)) for p in PACKAGE.rglob("__init__.py")}
    mapped = {m for m in mapped if m.startswith("weather_metrics")}
    assert sorted(actual - mapped) == [], "missing from the README's module map"
    assert sorted(mapped - actual) == [], "in the README's module map but not in the tree"


def test_an_export_child_process_loads_no_web_framework_and_no_pdf_library() -> None:
    """The package imports create_app on first use, formats.py the PDF writer: a child building
    an export starts without Flask, and without fpdf unless the file is a PDF."""
    script = (
        "import sys, weather_metrics.reports.child\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *FRAMEWORK, "fpdf"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout
