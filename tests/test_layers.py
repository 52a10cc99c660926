"""The import layering of afp_lib (docs/architecture.md): no module imports one of a higher layer, and no two
modules import each other, directly or around a loop. Both top-level and function-level imports count: an
import moved into a function to dodge a cycle is still the cycle."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "afp_lib"

# Lowest first. A module may import modules of its own layer or a lower one. The first matching prefix
# (dotted, without the `afp_lib.`) wins; every `*/cli.py` is a command line, on the top layer with `afp_lib.cli`.
LAYERS = [
    ("base", ["paths", "atomic", "config", "devices"]),
    ("data", ["data"]),
    ("models", ["families", "models", "tokenizer", "hidden", "losses", "cit", "metrics", "pretrained"]),
    ("trainer", ["trainer"]),
    ("world", ["world"]),
    ("eval", ["eval"]),
    ("analysis", ["analysis"]),
    ("experiment", ["sections", "experiment", "plan", "reprocheck"]),
    ("cli", ["cli", "__main__", ""]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(mod: str) -> int:
    rel = mod.removeprefix("afp_lib").removeprefix(".")
    if rel.endswith(".cli"):
        return len(LAYERS) - 1
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(rel == p or (p and rel.startswith(p + ".")) for p in prefixes):
            return i
    raise AssertionError(f"{mod}: in no layer of tests/test_layers.py LAYERS")


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(mod: str):
    """(line, imported afp_lib module) for every import in `mod`, at any depth, TYPE_CHECKING ones excepted
    (they never run). `from pkg import name` is the submodule `pkg.name` when one exists, else `pkg`."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "afp_lib":
                    yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "afp_lib":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield node.lineno, sub if sub in MODULES else target


def graph():
    return {m: sorted({(line, t) for line, t in imports(m) if t != m}) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = []
    for m, edges in graph().items():
        for line, t in edges:
            if t in MODULES and layer_of(t) > layer_of(m):
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports "
                           f"{t} ({LAYERS[layer_of(t)][0]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def find_cycle(g):
    """One import cycle as [(module, line, next module), ...], or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        for line, t in g.get(m, []):
            if t not in g:
                continue
            stack.append((m, line, t))
            if state.get(t) == 1:
                return stack[next(i for i, s in enumerate(stack) if s[0] == t):]
            if t not in state and (c := visit(t)):
                return c
            stack.pop()
        state[m] = 2
        return None

    for m in g:
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle():
    g, cycles = graph(), []
    while c := find_cycle(g):  # every cycle: report one, drop its last edge, look again
        cycles.append("\n".join(f"{MODULES[m].relative_to(ROOT)}:{line}: {m} imports {t}" for m, line, t in c))
        m, line, t = c[-1]
        g[m] = [e for e in g[m] if e != (line, t)]
    assert not cycles, "import cycles:\n" + "\n\n".join(cycles)


def test_the_checks_can_fail():
    """The checker itself: a made-up cycle is found, and a data module importing plan is an upward import."""
    assert find_cycle({"a": [(1, "b")], "b": [(2, "c")], "c": [(3, "a")]}) == [("a", 1, "b"), ("b", 2, "c"),
                                                                              ("c", 3, "a")]
    assert find_cycle({"a": [(1, "b")], "b": []}) is None
    assert layer_of("afp_lib.data.hub") < layer_of("afp_lib.plan.grid") < layer_of("afp_lib.data.cli")
    assert layer_of("afp_lib.trainer.loop") < layer_of("afp_lib.world.corpus") < layer_of("afp_lib.analysis.probes")
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("afp_lib.nowhere")
