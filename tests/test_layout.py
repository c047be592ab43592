"""The layout tells the story: the product never imports the lab or the baselines, and the
package has no import cycles."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "genre"
LAB = ("genre.bench", "genre.baselines")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, top_level_only: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every import of a genre module in `path`.

    `from genre.x import y` counts as importing genre.x.y when that is a module, else genre.x.
    With top_level_only, imports inside functions (lazy ones) are left out.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("genre")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "genre":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno))
    return found


def is_lab(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in LAB)


def test_modules_found():
    assert {"genre.core.estimator", "genre.bench.benchmark", "genre.baselines.nnr",
            "genre.cli"} <= set(MODULES)


@pytest.mark.parametrize("name", [m for m in MODULES if not is_lab(m)])
def test_product_never_imports_the_lab(name):
    """Product modules import nothing from bench/ or baselines/, not even lazily; the CLI
    is the one door to both, so its lab commands (cli/lab.py, and `fit --dataset`, which
    builds the paper's protocol) import the lab inside the command functions only."""
    path = MODULES[name]
    cli = name == "genre.cli" or name.startswith("genre.cli.")
    bad = [(m, line) for m, line in imports(path, top_level_only=cli) if is_lab(m)]
    assert not bad, f"{path.relative_to(SRC)} imports the lab: {bad}"


def test_no_import_cycles():
    graph = {name: {m for m, _ in imports(path, top_level_only=True) if m in MODULES}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_private_names_borrowed_across_modules():
    """A helper used by two modules is public where it lives (no `from x import _helper`)."""
    bad = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("genre"):
                bad += [f"{name}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")
                        and f"{node.module}.{a.name}" not in MODULES]
    assert not bad, bad
