"""The package's structure: imports flow one way, from the joint convention up to the command
line, and no module imports one that (directly or not) imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import handshape

SRC = Path(handshape.__file__).resolve().parent

# Each top-level part of the package and its layer: a module may import its own layer and
# the layers below, never one above.
LAYERS: dict[str, int] = {
    "joints": 0, "config": 0, "safeio": 0, "_moved": 0,
    "geometry": 1,
    "handmodel": 2,
    "render": 3, "data": 3,
    "nets": 4,
    "evaluation": 5,
    "lit": 6, "inference": 6,
    "studies": 7,
    "cli": 8,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every handshape module -> the handshape modules it imports (at any depth in the file)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = module_name(path)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
        graph[name] = {t for t in targets if t.startswith("handshape.") and t != name}
    return graph


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(m) for m in imports() if m != "handshape"}
    assert parts <= set(LAYERS), f"give these a layer: {sorted(parts - set(LAYERS))}"


def test_imports_never_point_up_a_layer() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in imports().items()
        for target in targets
        if source != "handshape" and LAYERS[part(target)] > LAYERS[part(source)]
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = imports()
    # A module importing a package imports its __init__ too; resolve names to known modules.
    known = {m: {t for t in ts if t in graph} for m, ts in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(known[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(known):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_no_import_cycles_between_parts() -> None:
    """Within a layer too (render and data, lit and inference), parts import one way only."""
    edges: dict[str, set[str]] = {}
    for source, targets in imports().items():
        if source != "handshape":
            edges.setdefault(part(source), set()).update(
                part(t) for t in targets if part(t) != part(source)
            )
    reachable = {a: set(b) for a, b in edges.items()}
    for middle in edges:  # transitive closure (Floyd-Warshall on a dozen parts)
        for a in edges:
            if middle in reachable[a]:
                reachable[a] |= reachable.get(middle, set())
    cycles = sorted(a for a in reachable if a in reachable[a])
    assert not cycles, f"parts on an import cycle: {cycles}"


# Module files of one job that may be longer than MAX_LINES, each with the reason it stays whole.
LONG_FILES: dict[str, str] = {
    # The validity checks of a closed triangle surface (edges, manifoldness, orientation,
    # degenerate and duplicate faces, self-intersection, volume, Euler characteristic): each is
    # short and vectorised, and check_closed_surface runs them all with their messages.
    "geometry/mesh_checks.py": "one job: checking a mesh is a valid closed surface",
}
MAX_LINES = 500


def test_module_files_are_of_readable_size() -> None:
    lengths = {
        path.relative_to(SRC).as_posix(): len(path.read_text().splitlines())
        for path in SRC.rglob("*.py")
    }
    long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in LONG_FILES}
    assert not long, f"split these (or allow them in LONG_FILES, with a reason): {long}"
    stale = [name for name in LONG_FILES if lengths.get(name, 0) <= MAX_LINES]
    assert not stale, f"no longer long, drop them from LONG_FILES: {stale}"
