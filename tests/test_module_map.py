"""docs/architecture.md's module map names every module of core/ with the modules it imports."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
DOC = ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of_ours(path: Path) -> set[str]:
    """The septool modules a module imports when it is imported (module level, not ``TYPE_CHECKING``
    blocks or imports inside functions, which load on use)."""
    package = module_name(path).split(".")[:-1] if path.name != "__init__.py" else module_name(path).split(".")
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found.update(".".join([*base, name]) for name in names)
    return found


def documented() -> dict[str, set[str]]:
    text = DOC.read_text().split("## Module map", 1)[1]
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| .+ \| ([^|]+) \|$", text, flags=re.MULTILINE)
    return {name: set() if deps.strip() == "none" else {d.strip() for d in deps.split(",")} for name, deps in rows}


def test_every_module_is_in_the_map_with_what_it_imports():
    table = documented()
    modules = {module_name(p): p for p in sorted(CORE.rglob("*.py")) if module_name(p)}
    assert sorted(set(modules) - set(table)) == [], "modules missing from docs/architecture.md's module map"
    assert sorted(set(table) - set(modules) - {"cli.app"}) == [], "the map names modules that do not exist"
    for name, path in modules.items():
        assert table[name] == imports_of_ours(path), f"{name}: the map says {sorted(table[name])}"


def test_the_cli_reaches_septool_only_through_its_public_api():
    tree = ast.parse((ROOT / "cli" / "app.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert {m for m in imported if m.startswith("septool")} == {"septool"}
    assert documented()["cli.app"] == {"septool"}


def test_the_public_functions_take_keywords_after_their_first_argument():
    """``septool.train(out, musdb=...)``, never ``septool.train(out, root)``: a call reads the same
    after a parameter is added, moved or renamed."""
    import inspect

    import septool

    functions = [getattr(septool, n) for n in septool.__all__ if inspect.isfunction(getattr(septool, n))]
    names = {f.__name__ for f in functions}
    assert {"load_model", "separate", "train", "evaluate", "add_decoder", "synthesize"} <= names
    for function in functions:
        params = list(inspect.signature(function).parameters.values())[1:]
        positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert positional == [], f"{function.__name__}: {positional} can be passed by position"
