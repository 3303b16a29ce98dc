"""The package's shape: imports point upstream along the data flow, files and functions stay small,
and nothing reaches into other libraries' internals. Read from the source with `ast`, so a lazy
import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitlab"
# The kernel every part may import, then the subpackages in the order data flows through them.
KERNEL = {"errors", "config", "record", "runs", "backend", "storage"}
FLOW = ["data", "training", "analysis", "sweeps", "inference", "web", "cli"]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def part_of(module_name: str) -> str:
    """'digitlab.training.train' -> 'training'; 'digitlab.runs' -> 'kernel'; 'digitlab' -> 'package'."""
    parts = module_name.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] == "__main__":
        return "cli"  # `python -m digitlab` is the command line
    return "kernel" if parts[1] in KERNEL else parts[1].removesuffix(".py")


def imported_modules(path: Path) -> set[str]:
    """Every digitlab module `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{alias.name}" if node.module == "digitlab" and alias.name.islower()
                         and not alias.name.startswith("_") else node.module for alias in node.names)
    return {name for name in found if name.split(".")[0] == "digitlab"}


def allowed(importer: str, imported: str) -> bool:
    if imported in ("package", "kernel"):
        return True
    if importer == "kernel":
        return imported == "data"  # the kernel may read the data-set catalog, nothing downstream
    if importer == "package":
        return imported not in ("cli", "web")
    return FLOW.index(imported) <= FLOW.index(importer)


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_upstream_only(path):
    name = module_name(path)
    importer = part_of(name)
    wrong = sorted(imported for imported in imported_modules(path) if not allowed(importer, part_of(imported)))
    assert not wrong, f"{name} ({importer}) imports downstream: {wrong}"


def test_the_rule_itself_catches_a_downstream_import():
    assert not allowed("data", "training") and not allowed("training", "web") and not allowed("kernel", "training")
    assert allowed("training", "data") and allowed("web", "inference") and allowed("cli", "web")


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name} has {text.count(chr(10))} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_nothing_patches_other_libraries(path):
    text = path.read_text(encoding="utf-8")
    assert "keras.src" not in text and "sys.meta_path" not in text and "builtins.__import__" not in text


def test_every_error_the_library_defines_lives_in_errors_and_is_exported():
    import digitlab
    from digitlab import errors

    defined = {name for name, value in vars(errors).items() if isinstance(value, type)
               and issubclass(value, Exception)}
    assert defined <= set(digitlab.__all__), f"not exported from digitlab: {sorted(defined - set(digitlab.__all__))}"
    # Internal signals that never leave their module: each becomes an answer or another error there.
    internal = {"SourceFailed", "RequestError", "BodyTooLarge", "BodyTooSlow"}
    elsewhere = []
    for path in modules():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(getattr(base, "id", "").endswith(("Error", "Exception"))
                                                      for base in node.bases):
                elsewhere.append(node.name)
    assert not set(elsewhere) - internal, f"error classes outside errors.py: {elsewhere}"


def module_name(path: Path) -> str:
    """src/digitlab/inference/predict.py -> 'digitlab.inference.predict'; a package's __init__.py -> the package."""
    return ".".join(("digitlab", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def imports_between_modules(path: Path) -> list[tuple[str, str | None, str, int]]:
    """(digitlab module, name imported from it or None for the module itself, the name it is bound to in `path`,
    line) for every import in `path`, lazy ones too. `from digitlab.inference import rejection` imports the
    module digitlab.inference.rejection."""
    known = {module_name(other) for other in modules()}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, alias.asname or alias.name, node.lineno)
                         for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module in known:
            for alias in node.names:
                submodule, bound = f"{node.module}.{alias.name}", alias.asname or alias.name
                found.append((submodule, None, bound, node.lineno) if submodule in known
                             else (node.module, alias.name, bound, node.lineno))
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in a graph of imports (its modules in order, the first repeated last), or None."""
    state: dict[str, str] = {}  # "open" while the modules it imports are being walked, then "done"

    def walk(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*trail[trail.index(target):], target]
            if target not in state and (cycle := walk(target, [*trail, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start, [start])):
            return cycle
    return None


def test_the_modules_of_inference_import_one_another_in_one_direction():
    inference = {module_name(path): path for path in modules() if module_name(path).startswith("digitlab.inference.")}
    graph = {name: {module for module, _, _, _ in imports_between_modules(path) if module in inference}
             for name, path in inference.items()}
    cycle = import_cycle(graph)
    assert cycle is None, f"an import cycle (lazy imports included): {' -> '.join(cycle)}"


def test_the_cycle_check_itself_finds_a_cycle():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")  # dunders (__version__) are public


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_another_ones_private_names(path):
    """What one module uses of another is public: a leading underscore means "only in this module"."""
    imported = imports_between_modules(path)
    private = [f"{module}.{name} (line {line})" for module, name, _, line in imported if name and is_private(name)]
    # `predict._name` where a module was imported by name (`from digitlab.inference import predict`).
    modules_here = {bound for _, name, bound, _ in imported if name is None}
    private += [f"{node.value.id}.{node.attr} (line {node.lineno})"
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules_here and is_private(node.attr)]
    assert not private, f"{module_name(path)} uses private names of other modules: {private}"
