"""The package's shape: imports point upstream along the data flow, files and functions stay small,
and nothing reaches into other libraries' internals. Read from the source with `ast`, so a lazy
import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitlab"
# The kernel every part may import, then the subpackages in the order data flows through them.
KERNEL = {"errors", "config", "record", "runs", "backend"}
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
    name = ".".join(("digitlab", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
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
