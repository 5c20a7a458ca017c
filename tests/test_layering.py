"""The rooms of ``scripts/`` (and the apps above them) import only the rooms below them.

The allowed graph is written once, here (:data:`ALLOWED`), and drawn in ``docs/architecture.md``. Every
import of every module is read with :mod:`ast` (module level and inside functions, absolute and relative),
so a function-local import does not hide an edge. Known violations are listed in :data:`EXCEPTIONS`, each
with the file, the room it reaches and the reason; an exception that no longer occurs fails the test too,
so the list (and the doc) shrinks with the code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Single-file modules of ``scripts/`` that every room may use; they import only one another.
BASE = frozenset({"__init__", "atomic_io", "config_checks", "error_messages", "flags", "ids", "quiet_cucim",
                  "quiet_natives", "runtime_threads", "safe_load", "settings", "settings_descriptions"})

#: room -> the rooms it may import (besides itself and :data:`BASE`). Lowest first. ``apps`` is ``apps/``;
#: every other room is a sub-package (or top-level script) of ``scripts/``.
ALLOWED: dict[str, frozenset[str]] = {
    "text": frozenset(),
    "data": frozenset({"text"}),
    "encoders": frozenset(),
    "networks": frozenset(),
    "packaging": frozenset(),
    "metrics": frozenset({"data", "text"}),
    "wsi": frozenset({"encoders", "data"}),
    "demo": frozenset({"wsi", "encoders", "data", "text"}),
    "engines": frozenset({"networks", "metrics", "wsi", "encoders", "data", "text"}),
    "transfer": frozenset({"engines", "networks", "metrics", "wsi", "encoders", "data", "text"}),
    "serving": frozenset({"transfer", "engines", "networks", "metrics", "wsi", "encoders", "data", "text"}),
    "import_reference_checkpoint": frozenset({"engines", "networks", "text"}),
    "apps": frozenset({"serving", "engines", "networks", "metrics", "wsi", "encoders", "data", "text"}),
}

#: (importing file, imported room) -> why it is allowed for now.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    """One import of a room by another: ``file:line`` in room ``source`` imports ``target`` (module name)."""

    file: str
    line: int
    source: str
    target: str

    @property
    def target_room(self) -> str:
        return self.target.split(".")[1]


def room_of(rel: Path) -> str | None:
    """The room of a file (path relative to the repository root), or None when it is in none."""
    parts = rel.parts
    if parts[0] == "apps":
        return "apps"
    if parts[0] == "scripts" and len(parts) >= 2:
        return parts[1].removesuffix(".py")
    return None


def _imported_modules(node: ast.AST, package: list[str]) -> list[str]:
    """Absolute module names an import statement names (``from scripts import wsi`` names ``scripts.wsi``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package[: len(package) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    return [f"{module}.{alias.name}" for alias in node.names] if module == "scripts" else [module]


def import_edges(root: Path, folders: tuple[str, ...] = ("scripts", "apps")) -> list[Edge]:
    """Every import of ``scripts.<room>`` by a module of another room under ``root``'s ``folders``."""
    edges = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root)
            source = room_of(rel)
            if source is None:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
            package = list(rel.parent.parts)
            for node in ast.walk(tree):
                for module in _imported_modules(node, package):
                    parts = module.split(".")
                    if len(parts) >= 2 and parts[0] == "scripts" and parts[1] != source:
                        edges.append(Edge(rel.as_posix(), node.lineno, source, module))
    return edges


def violations(edges: list[Edge], allowed: dict[str, frozenset[str]] = ALLOWED,
               exceptions: dict[tuple[str, str], str] = EXCEPTIONS) -> tuple[list[str], list[tuple[str, str]]]:
    """The imports the graph does not allow (``file:line: room imports module``) and the unused exceptions."""
    bad, used = [], set()
    for edge in edges:
        target = edge.target_room
        if edge.source in BASE:
            ok = target in BASE
        else:
            ok = target in BASE or target in allowed.get(edge.source, frozenset())
        if ok:
            continue
        if (edge.file, target) in exceptions:
            used.add((edge.file, target))
            continue
        bad.append(f"{edge.file}:{edge.line}: room {edge.source!r} imports {edge.target} (room {target!r}); "
                   f"{edge.source!r} may import {sorted(allowed.get(edge.source, ()))} and the base modules")
    return bad, sorted(set(exceptions) - used)


def test_every_room_imports_only_the_rooms_below_it():
    edges = import_edges(REPO_ROOT)
    assert len(edges) > 50, "the checker found almost no imports: is it reading the tree?"
    bad, stale = violations(edges)
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)
    assert not stale, f"these exceptions no longer occur: remove them from EXCEPTIONS and the doc: {stale}"


def test_every_room_is_in_the_graph():
    rooms = {room_of(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "scripts").rglob("*.py")}
    assert rooms - BASE - set(ALLOWED) == set(), "a new room: add it to ALLOWED and docs/architecture.md"


def test_the_doc_lists_every_room():
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [room for room in ALLOWED if f"`{room}`" not in doc]
    assert not missing, f"docs/architecture.md does not name {missing}"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_checker_catches_a_lower_room_importing_a_higher_one(tmp_path):
    _write(tmp_path, "scripts/__init__.py", "")
    _write(tmp_path, "scripts/atomic_io.py", "import os\n")
    _write(tmp_path, "scripts/engines/__init__.py", "from .runner import run\n")
    _write(tmp_path, "scripts/engines/runner.py", "from scripts.networks import Net\nfrom scripts import atomic_io\n")
    _write(tmp_path, "scripts/networks/__init__.py", "from .net import Net\n")
    _write(tmp_path, "scripts/networks/net.py", "from scripts.atomic_io import write\n")
    _write(tmp_path, "apps/app.py", "from scripts.engines import run\n")
    bad, stale = violations(import_edges(tmp_path), exceptions={})
    assert bad == [] and stale == []  # engines -> networks, apps -> engines, anything -> base: allowed

    # the same tree with networks reaching up into engines: absolute, relative and function-local imports
    _write(tmp_path, "scripts/networks/net.py", "from scripts.engines import run\n")
    _write(tmp_path, "scripts/networks/late.py", "def f():\n    from ..engines.runner import run\n    return run\n")
    _write(tmp_path, "scripts/networks/whole.py", "import scripts.engines.runner\n")
    bad, _ = violations(import_edges(tmp_path), exceptions={})
    assert [line.split(":")[0] for line in bad] == [
        "scripts/networks/late.py", "scripts/networks/net.py", "scripts/networks/whole.py"]
    assert all("room 'networks' imports scripts.engines" in line for line in bad)
    assert "scripts/networks/late.py:2:" in bad[0]

    # a named exception silences exactly its file; one that no longer occurs is reported
    exceptions = {("scripts/networks/net.py", "engines"): "reason", ("scripts/wsi/gone.py", "demo"): "reason"}
    bad, stale = violations(import_edges(tmp_path), exceptions=exceptions)
    assert len(bad) == 2 and not any("net.py" in line for line in bad)
    assert stale == [("scripts/wsi/gone.py", "demo")]

    # a base module may not import a room
    _write(tmp_path, "scripts/atomic_io.py", "from scripts.networks import Net\n")
    bad, _ = violations(import_edges(tmp_path), exceptions=exceptions)
    assert any(line.startswith("scripts/atomic_io.py:1: room 'atomic_io'") for line in bad)


#: test folders that are not a room of scripts/: shared helpers, the benchmark scripts, the network guard
TEST_FOLDERS_BESIDE_ROOMS = {"support": "helpers imported as tests.support.<name>",
                             "benchmarks": "tests of benchmarks/", "no_network": "sitecustomize for subprocesses",
                             "docs": "the commands of README.md and docs/, run as written"}


def test_tests_mirror_the_rooms():
    """Each test folder is named after a room of scripts/ (or is a named helper folder); no bare-name helpers."""
    tests = REPO_ROOT / "tests"
    rooms = {p.name for p in (REPO_ROOT / "scripts").iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - rooms - set(TEST_FOLDERS_BESIDE_ROOMS) == set(), "a test folder that matches no room"
    loose = sorted(p.name for p in tests.glob("*.py") if p.name != "conftest.py" and p.name != "__init__.py"
                   and not p.name.startswith("test_"))
    assert loose == [], f"helper modules belong in tests/support/: {loose}"
    for folder in folders - {"no_network"}:
        assert (tests / folder / "__init__.py").exists(), f"tests/{folder} must be a package (imported by path)"
