"""`digitlab models`: the reader bundled in the package, with its manifest."""

from __future__ import annotations

import json

import typer

from digitlab.cli.output import console


def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
) -> None:
    """List the bundled models (what predict, read and serve use when no model is named and no run is finished),
    each file checked against the manifest, with how they were made and what they score."""
    from digitlab.inference.bundled import bundled_folder, verified_bundle

    bundle = verified_bundle()  # BundledModelError (exit 1) when a file is missing or altered
    manifest = bundle.manifest
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    console.print(f"{bundle.description}, in {bundled_folder()}", highlight=False, soft_wrap=True)
    for entry in manifest["files"]:
        console.print(f"  {entry['name']:<18} {entry['kind']:<11} {entry['bytes'] / 1e6:5.1f} MB  "
                      f"sha256 {entry['sha256'][:16]}...  verified", highlight=False, soft_wrap=True)
    training = manifest.get("training", {})
    machine = training.get("machine", {})
    console.print(f"recipe {manifest.get('recipe')}, seed {manifest.get('seed')}: "
                  f"trained in {training.get('seconds', 0) / 60:.0f} min on {machine.get('cores', '?')} cores "
                  f"({machine.get('cpu', '?')})", highlight=False, soft_wrap=True)
    for line in score_lines(manifest.get("scores", {})):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print("rebuild with: python scripts/build_bundled_reader.py; the whole manifest: digitlab models --json",
                  highlight=False, soft_wrap=True)


def score_lines(scores: dict) -> list[str]:
    """The manifest's figures, one line per test set."""
    def percent(value) -> str:
        return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"

    lines = []
    for name, label in (("numbers", "numbers of MNIST test digits read exactly"),
                        ("handwriting_numbers", "numbers in handwriting fonts read exactly")):
        if name in scores:
            figures = scores[name]
            lines.append(f"{label}: {percent(figures.get('read_exactly'))} of {figures.get('count')} "
                         f"(touching {percent(figures.get('touching'))})")
    for name, label in (("singles", "single MNIST test digits"), ("handwriting_singles", "single handwritten digits")):
        if name in scores:
            figures = scores[name]
            lines.append(f"{label}: {percent(figures.get('right'))} right, {percent(figures.get('refused'))} refused")
    for name, label in (("non_digits", "non-digits of trained kinds"), ("unseen_non_digits",
                                                                          "non-digits of kinds never trained on")):
        if name in scores:
            lines.append(f"{label}: {percent(scores[name].get('refused'))} refused")
    if "speed" in scores:
        lines.append(f"one 8-digit line: {scores['speed'].get('ms_per_8_digit_line')} ms")
    return lines
