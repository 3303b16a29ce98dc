"""The documentation pages generated from the code while the site builds (mkdocs-gen-files runs this).

Nothing here is retyped from the code, so none of it can fall behind:

- reference/http.md and reference/openapi.json: the HTTP API from the FastAPI app's own OpenAPI schema
  (the app built around the bundled reader, never started);
- reference/run-folder.md: config.json and metrics.json, field by field, from the dataclasses in
  src/digitlab/record.py and src/digitlab/config.py and the comment above each field;
- benchmarks/bundled-reader.md: the bundled reader's figures, from its manifest.json;
- getting-started/tutorial.ipynb: notebooks/tutorial.ipynb, shown as saved (mkdocs-jupyter, not executed).

- reference/cli.md: every command and option, from the Typer app by Typer's own Markdown writer (what
  `typer digitlab.cli utils docs` prints).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import mkdocs_gen_files
from openapidocs.mk.v3 import OpenAPIV3DocumentationHandler

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "digitlab"


def write_page(path: str, text: str) -> None:
    """One generated page; the edit link points at this script, which wrote it."""
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(text)
    mkdocs_gen_files.set_edit_path(path, Path("scripts") / "docs_pages.py")


def cli_reference() -> None:
    """Every command, argument and option of `digitlab`, with its help."""
    import typer
    from typer.cli import get_docs_for_click

    from digitlab.cli import app

    command = typer.main.get_command(app)
    text = get_docs_for_click(obj=command, ctx=typer.Context(command, info_name="digitlab"), name="digitlab",
                              title="Command line")
    write_page("reference/cli.md", text.replace(
        "# Command line\n", "# Command line\n\nGenerated from the Typer app (`src/digitlab/cli/`) while the site "
        "builds: every command, argument and option with its help, as `digitlab COMMAND --help` prints it. How to "
        "use them: the guides, from [Data](../guides/data.md) to [Deploy](../guides/deploy.md).\n", 1))


def http_reference() -> None:
    """The OpenAPI schema of `digitlab serve`, as JSON and as a page."""
    from digitlab.inference.bundled import bundled_folder
    from digitlab.inference.loading import load_bundled_reader
    from digitlab.web.app import create_app

    schema = create_app(load_bundled_reader(bundled_folder(), line_model=False)).openapi()
    with mkdocs_gen_files.open("reference/openapi.json", "w") as file:
        json.dump(schema, file, indent=2)
    rendered = OpenAPIV3DocumentationHandler(schema, style="MKDOCS", source="openapi.json").write()
    write_page("reference/http.md", (
        "# HTTP API\n\n"
        "Generated from the OpenAPI schema of the app that `digitlab serve` runs (the same document it serves at "
        "`/openapi.json`, with Swagger UI at `/docs` and ReDoc at `/redoc`). Download it: "
        "[openapi.json](openapi.json). How to use the API, with examples: "
        "[The page and the HTTP API](../guides/serving.md).\n\n" + rendered))


def field_comments(path: Path, class_name: str) -> list[tuple[str, str, str, str]]:
    """(name, type, default, comment) of each field of a dataclass, in order; a field with no comment of
    its own shares the comment of the field above it (the source groups such fields under one comment)."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(item for item in tree.body if isinstance(item, ast.ClassDef) and item.name == class_name)
    fields, comment = [], ""
    for statement in node.body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        if statement.target.id.startswith("_"):
            continue
        above, index = [], statement.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#"):
            above.insert(0, lines[index].strip().lstrip("#").strip())
            index -= 1
        comment = " ".join(above) or comment
        default = ast.get_source_segment(source, statement.value) if statement.value is not None else "(required)"
        fields.append((statement.target.id, ast.get_source_segment(source, statement.annotation), default, comment))
    return fields


def fields_table(fields: list[tuple[str, str, str, str]]) -> str:
    """A Markdown table of fields; pipes in code or text escaped."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| field | type | default | what |", "|---|---|---|---|"]
    rows += [f"| `{name}` | `{cell(kind)}` | `{cell(default)}` | {cell(comment)} |"
             for name, kind, default, comment in fields]
    return "\n".join(rows) + "\n"


def run_folder_reference() -> None:
    """config.json, metrics.json and the training settings, from their dataclasses."""
    record = ast.get_docstring(ast.parse((SOURCE / "record.py").read_text())) or ""
    write_page("reference/run-folder.md", (
        "# Run folder format\n\n"
        "Generated from `src/digitlab/record.py` and `src/digitlab/config.py`: each field with the comment the "
        "source gives it. Every command reads these files through `digitlab.runs.read_run`; what the folder "
        "holds and how runs end is in [Run folders](../guides/run-folders.md).\n\n"
        f"{record}\n\n"
        "## config.json\n\n`RunConfig`: what was trained, on what, with which software; written before training "
        "starts.\n\n" + fields_table(field_comments(SOURCE / "record.py", "RunConfig")) +
        "\n## config.json: `training`\n\n`TrainingConfig`: every setting of the run. Each is a flag of "
        "`digitlab train` or reachable with `--set NAME=VALUE`; the defaults are the tutorial's.\n\n" +
        fields_table(field_comments(SOURCE / "config.py", "TrainingConfig")) +
        "\n## metrics.json\n\n`RunMetrics`: how the run ended and what it measured; written last, so a folder "
        "without it did not finish.\n\n" + fields_table(field_comments(SOURCE / "record.py", "RunMetrics"))))


def percent(value) -> str:
    """0.9 -> 90.0%; anything else as a dash."""
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"


def bundled_reader_benchmark() -> None:
    """The bundled reader's figures as its manifest records them."""
    manifest = json.loads((SOURCE / "bundled" / "manifest.json").read_text())
    scores, training = manifest.get("scores", {}), manifest.get("training", {})
    machine = training.get("machine", {})
    versions = manifest.get("settings", {}).get("versions", {})

    def by_layout(figures: dict) -> str:
        return ", ".join(f"{layout} {percent(figures[layout])}" for layout in ("apart", "touching", "overlapping")
                         if layout in figures)

    def hardest(figures: dict, count: int = 4) -> str:
        kinds = sorted(figures.get("by_kind", {}).items(), key=lambda item: item[1])[:count]
        return ", ".join(f"{kind} {percent(share)}" for kind, share in kinds)

    rows = []
    for name, label in (("numbers", "numbers of 2-8 MNIST test digits"),
                        ("handwriting_numbers", "numbers in handwriting fonts no training uses")):
        if name in scores:
            figures = scores[name]
            rows.append(f"| {figures.get('count')} {label} | read exactly | **{percent(figures.get('read_exactly'))}** "
                        f"({by_layout(figures)}; right count {percent(figures.get('right_count'))}) |")
    for name, label in (("singles", "single MNIST test digits"),
                        ("handwriting_singles", "single digits in handwriting fonts")):
        if name in scores:
            figures = scores[name]
            rows.append(f"| {figures.get('count')} {label} | right / refused | "
                        f"{percent(figures.get('right'))} / {percent(figures.get('refused'))} |")
    for name, label in (("non_digits", "non-digits of the kinds training draws"),
                        ("unseen_non_digits", "non-digits of kinds no training draws")):
        if name in scores:
            figures = scores[name]
            rows.append(f"| {figures.get('count')} {label} | refused by `predict` / read as no number | "
                        f"**{percent(figures.get('refused'))}** / {percent(figures.get('read_as_no_number'))} "
                        f"(hardest: {hardest(figures)}) |")
    if "speed" in scores:
        rows.append(f"| one 8-digit line, in memory | time | {scores['speed'].get('ms_per_8_digit_line')} ms |")
    write_page("benchmarks/bundled-reader.md", (
        "# Bundled reader\n\n"
        "What the reader shipped in the package scores, generated from its `src/digitlab/bundled/manifest.json` "
        "(the build script measures and records these figures; `digitlab models` prints them too). "
        "What the reader is: [The bundled reader](../guides/bundled-reader.md).\n\n"
        f"- **Model**: recipe `{manifest.get('recipe')}`, seed {manifest.get('seed')}, digitlab "
        f"{manifest.get('digitlab_version')}; built {manifest.get('built_at', '?')}\n"
        f"- **Machine**: {machine.get('cores', '?')} cores, {machine.get('cpu', '?')}"
        f"{' (AVX-512)' if machine.get('avx512') else ''}, {machine.get('system', '?')}; trained in "
        f"{training.get('seconds', 0) / 60:.1f} min (the line model {training.get('line_model_seconds', 0) / 60:.1f} min)\n"
        f"- **Versions**: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + "\n"
        f"- **Command**: `python scripts/build_bundled_reader.py` (it trains `{training.get('command', '?')}`); the "
        f"scores alone: `{manifest.get('scores_command', '?')}`\n\n"
        "All test sets are photographs made by code (`src/digitlab/inference/scoring.py`) from MNIST's **test** "
        "digits or from drawings no training uses; none is a photograph of real handwriting.\n\n"
        "| test set (photographed) | measure | result |\n|---|---|---|\n" + "\n".join(rows) + "\n"))


def notebook() -> None:
    """The tutorial notebook, copied into the site as saved (outputs included, nothing executed)."""
    with mkdocs_gen_files.open("getting-started/tutorial.ipynb", "w") as file:
        file.write((ROOT / "notebooks" / "tutorial.ipynb").read_text())


def main() -> None:
    """Write every generated page."""
    cli_reference()
    http_reference()
    run_folder_reference()
    bundled_reader_benchmark()
    notebook()


main()
