"""The house rules, read from the source: stages import only downward, no import cycles,
one owner per concept, and the lower stages need only torch and numpy.

Every ``import`` and ``from ... import`` counts, at module level and inside functions
(a lazy import is still a dependency), and so do the names a package exports lazily
(``molviz._lazy.lazy_exports``): ``from molviz.engine import Engine`` inside the engine
is an import of ``molviz.engine._engine``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "molviz"

# Stage of each part of the package, low to high (STYLE.md). A module may import a
# lower stage or its own subpackage; never a higher stage or a peer of its own stage.
STAGES = {
    "molviz.errors": 0,
    "molviz._io": 1, "molviz._lazy": 1, "molviz._assets": 1, "molviz._progress": 1,
    "molviz._cmd": 2,
    "molviz.chem": 3, "molviz.mesh": 3,
    "molviz.fields": 4,
    "molviz.models": 5,
    "molviz.training": 6, "molviz.engine": 6,
    "molviz.view": 7,
    "molviz.app": 8,
    "molviz.cli": 9, "molviz.bench": 9,
    "molviz.__main__": 10, "molviz": 10,
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
# third-party packages a stage may import at module level (anything else only inside functions)
MODULE_LEVEL_OK = {
    "molviz.fields": {"numpy", "torch"},
    "molviz.models": {"numpy", "torch", "safetensors"},
    "molviz.engine": {"numpy", "torch"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lazy_exports(path: Path) -> dict[str, str]:
    """name -> submodule for a package ``__init__`` that calls ``lazy_exports``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {name: sub for sub, names in table.items() for name in names}
    return {}


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
EXPORTS = {m: lazy_exports(p) for m, p in MODULES.items() if p.name == "__init__.py"}


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = set(_runs_at_import(tree))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    found.append((sub, node.lineno, id(node) in top_level))
                elif target in EXPORTS and alias.name in EXPORTS[target]:
                    found.append((f"{target}.{EXPORTS[target][alias.name]}", node.lineno, id(node) in top_level))
                else:
                    found.append((target, node.lineno, id(node) in top_level))
    return found


def _runs_at_import(tree: ast.AST):
    """Ids of the import statements that run when the module is imported: not inside a function,
    not under ``if TYPE_CHECKING:`` (try/except and other blocks at module level still run)."""
    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (id(n) for c in child.orelse for n in ast.walk(c))
                continue
            yield id(child)
            yield from walk(child)
    return walk(tree)


def stage_of(module: str) -> tuple[str, int]:
    best = max((k for k in STAGES if module == k or module.startswith(k + ".")), key=len)
    return best, STAGES[best]


def test_every_module_has_a_stage():
    unknown = [m for m in MODULES if not any(m == k or m.startswith(k + ".") for k in STAGES)]
    assert not unknown, f"give these modules a stage in STAGES (and STYLE.md's order): {unknown}"


def against_the_order(module: str, target: str) -> bool:
    """Whether ``module`` importing ``target`` breaks the stage order (same subpackage: never)."""
    if not target.startswith("molviz") or module == "molviz":   # the top-level re-exports sit above all
        return False
    own, level = stage_of(module)
    other, other_level = stage_of(target)
    if other == own or own.startswith(other + ".") or other.startswith(own + "."):
        return False
    return other_level >= level


def test_imports_go_only_downward():
    wrong = [f"{module}:{line} imports {target}" for module in MODULES
             for target, line, _ in imports(module) if against_the_order(module, target)]
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: sorted({t for t, _, _ in imports(m) if t in MODULES and t != m}) for m in MODULES}
    # a package __init__ that only declares lazy exports imports nothing until used
    for pkg, table in EXPORTS.items():
        if table:
            graph[pkg] = [t for t in graph[pkg] if t != "molviz._lazy"]
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_only_the_app_imports_trame():
    wrong = [f"{m}:{line}" for m in MODULES for t, line, _ in imports(m)
             if t.split(".")[0] == "trame" and not m.startswith("molviz.app")]
    assert not wrong, f"trame imported outside molviz.app: {wrong}"


def test_mesh_never_imports_torch():
    wrong = [f"{m}:{line}" for m in MODULES if m.startswith("molviz.mesh")
             for t, line, _ in imports(m) if t.split(".")[0] == "torch"]
    assert not wrong, wrong


@pytest.mark.parametrize("stage", sorted(MODULE_LEVEL_OK))
def test_lower_stages_need_only_torch_and_numpy_at_import(stage):
    """The GPU box has torch and numpy but no RDKit, gemmi or PyVista."""
    wrong = []
    for m in MODULES:
        if not (m == stage or m.startswith(stage + ".")):
            continue
        for t, line, top in imports(m):
            root = t.split(".")[0]
            if top and root not in STDLIB and root != "molviz" and root not in MODULE_LEVEL_OK[stage]:
                wrong.append(f"{m}:{line} imports {t} at module level")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_what_it_should():
    """The rules above would catch a violation: run them on a made-up module graph."""
    assert stage_of("molviz.engine._encode") == ("molviz.engine", 6)
    assert stage_of("molviz.training._fit")[1] == stage_of("molviz.engine")[1]   # peers: forbidden both ways
    assert ("molviz.errors", 0) == stage_of("molviz.errors")
    assert stage_of("molviz.view.scene")[1] < stage_of("molviz.app._app")[1]
    assert against_the_order("molviz.engine._encode", "molviz.training._train")      # a peer
    assert against_the_order("molviz.training._cli", "molviz.app.scene")             # upward
    assert against_the_order("molviz.chem._load", "molviz.mesh._export")             # a peer
    assert not against_the_order("molviz.view.scene", "molviz.fields._grid")         # downward
    assert not against_the_order("molviz.engine._cli", "molviz.engine._engine")      # its own stage
    assert "molviz._cmd" in {t for t, _, _ in imports("molviz.cli")}
    # a name exported lazily counts as an import of the submodule that defines it
    assert "molviz.engine._engine" in {t for t, _, _ in imports("molviz.engine._cli")}


# ----------------------------------------------------------------------------- exports and the contract
@pytest.mark.parametrize("package", sorted(p for p, table in EXPORTS.items() if table))
def test_type_checkers_see_the_lazy_exports(package):
    """Each lazily exported name is also imported under ``if TYPE_CHECKING:`` from the same submodule."""
    tree = ast.parse(MODULES[package].read_text())
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for imp in ast.walk(node):
                if isinstance(imp, ast.ImportFrom):
                    seen.update({a.name: imp.module.rpartition(".")[2] for a in imp.names})
    assert seen == EXPORTS[package], f"{package}: the TYPE_CHECKING block and _EXPORTS differ"


def contract_names() -> dict[str, list[str]]:
    """package -> names that start a line in its CONTRACT.md block."""
    import re
    text = (ROOT / "CONTRACT.md").read_text()
    out: dict[str, list[str]] = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        head = section.split("\n", 1)[0].strip()
        if not head.startswith("molviz."):
            continue
        block = re.search(r"```python\n(.*?)```", section, re.S)
        names = []
        for line in block.group(1).splitlines():
            line = line.split("#")[0]                       # comments name other things
            for part in line.split(" ; ") if not line.startswith((" ", "#")) else []:
                m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z_]+)?\s*(\(|=|$|,| /|\s+#)", part.strip())
                if m:
                    names.append(m.group(1))
                names += re.findall(r"/ ([A-Za-z_][A-Za-z0-9_]*)\(", part)
        out[head] = names
    return out


def test_contract_names_exist():
    import importlib
    listed = contract_names()
    assert set(listed) >= {"molviz.chem", "molviz.fields", "molviz.models", "molviz.engine", "molviz.mesh",
                           "molviz.view"}
    missing = [f"{pkg}.{name}" for pkg, names in listed.items() for name in names
               if not hasattr(importlib.import_module(pkg), name)]
    assert sum(map(len, listed.values())) > 60
    assert not missing, f"CONTRACT.md names what the packages do not export: {missing}"


def test_contract_layout_paths_exist():
    import re
    text = (ROOT / "CONTRACT.md").read_text()
    paths = re.findall(r"^(molviz/[\w/.]+)", text, re.M)
    assert len(paths) > 10
    assert not [p for p in paths if not (ROOT.parent / p).exists()]


def test_cli_choices_match_the_registries():
    from molviz.cli import build_parser
    from molviz.models import MODEL_SIZES
    from molviz.training import PRESETS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert set(choices["size"]) == set(MODEL_SIZES)
    assert set(choices["preset"]) >= set(PRESETS)
    from molviz.models._siren import Modulation
    assert set(choices["modulation"]) == set(Modulation.__args__)


def test_headless_render_needs_no_trame(tmp_path):
    """`molviz render` is the view stage's: it runs with trame unimportable."""
    import subprocess
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('trame', 'trame_server', 'trame_client', 'trame_vuetify', 'wslink'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from molviz.cli import main\n"
            f"sys.exit(main(['render', 'freesolv', '--item', '1', '--resolution', '24', '--size', '160x120', "
            f"'--out', {str(tmp_path / 'shot.png')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "shot.png").stat().st_size > 1000
