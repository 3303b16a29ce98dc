"""Rebuild the reader bundled in the package (src/digitlab/bundled/) from scratch, and score it.

    .venv/bin/python scripts/build_bundled_reader.py [--run-dir DIR] [--seed 0] [--output src/digitlab/bundled]

1. Train: `digitlab train --recipe reader-large --seed SEED --run-dir DIR` (about 50 minutes on 2 CPU
   cores). A finished run already in DIR with exactly that recipe's settings is used as it is. With
   `--reuse-classifier RUN` (a finished reader-large run whose settings differ from the recipe's in the
   line model's settings at most), RUN's classifier is copied into DIR as it is and only the line
   model is trained again, with this source tree's line model code (which may have changed: new
   training marks, new classes); the manifest says so under "training".
2. Export both networks to ONNX (`digitlab export`: each file checked against Keras).
3. Score the exported reader on every test set of `digitlab.inference.scoring` (built from MNIST's test
   digits, drawn non-digits of kinds no training uses, handwriting fonts), and on the small check
   sample that tests/test_bundled.py scores again.
4. Write reader.onnx, reader.line.onnx and manifest.json (file hashes, recipe and every setting, seed,
   digitlab version, training data checksums, training time and machine, the figures) into --output,
   each through a temporary file; the previous bundle's files are replaced only after all is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "reader-large"
CLASSIFIER_FILE = "reader.onnx"
LINE_MODEL_FILE = "reader.line.onnx"
# The check sample that tests/test_bundled.py scores again in CI (small: seconds).
CHECK_SIZES = {"lines": 60, "singles": 60, "non_digits": 0, "unseen_non_digits": 60, "handwriting_lines": 0,
               "handwriting_singles": 0, "seed": 3_000_017}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "bundled-reader", help="the training run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "src" / "digitlab" / "bundled")
    parser.add_argument("--reuse-classifier", type=Path, help="a finished reader-large run: keep its classifier, "
                        "train only the line model again (into --run-dir)")
    arguments = parser.parse_args()

    from digitlab import __version__, runs
    from digitlab.inference import bundled, scoring
    from digitlab.training.recipes import recipe_config

    config = recipe_config(RECIPE, seed=arguments.seed)
    if arguments.reuse_classifier is not None:
        run, retrained = _retrained_line_model(config, arguments.reuse_classifier, arguments.run_dir)
    else:
        run, retrained = _trained_run(config, arguments.run_dir), None
    with tempfile.TemporaryDirectory(prefix="digitlab-bundle-") as scratch:
        scratch = Path(scratch)
        _export(run.path, scratch / CLASSIFIER_FILE)
        classifier = _load(scratch / CLASSIFIER_FILE, scratch / LINE_MODEL_FILE)
        print("scoring the exported reader ...", flush=True)
        scores = scoring.score_reader(classifier, progress=lambda text: print(f"  {text}", flush=True))
        check_sizes = scoring.ScoreSizes(**CHECK_SIZES)
        check = scoring.score_reader(classifier, check_sizes)
        files = [bundled.file_entry(scratch / CLASSIFIER_FILE, bundled.CLASSIFIER_KIND),
                 bundled.file_entry(scratch / LINE_MODEL_FILE, bundled.LINE_MODEL_KIND)]
        manifest = {
            "format": bundled.MANIFEST_FORMAT,
            "name": RECIPE,
            "description": _recipe_description(),
            "files": files,
            "recipe": RECIPE,
            "settings": run.config.to_dict(),
            "seed": run.config.training.seed,
            "source_commit": _commit(),
            "digitlab_version": __version__,
            "training_data": _training_data(config),
            "training": _training(run, retrained),
            "scores": scores,
            "scores_command": "scripts/build_bundled_reader.py (digitlab.inference.scoring.score_reader, "
                              f"ScoreSizes() with seed {scoring.SEED})",
            "check": {"sizes": dataclasses.asdict(check_sizes), "scores": _without_speed(check)},
            "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        arguments.output.mkdir(parents=True, exist_ok=True)
        for name in (CLASSIFIER_FILE, LINE_MODEL_FILE):
            runs.write_bytes_atomic(arguments.output / name, (scratch / name).read_bytes())
        runs.write_json(arguments.output / bundled.MANIFEST_FILE, manifest)  # last: it names the files above
    size = sum(entry["bytes"] for entry in files)
    print(f"bundled reader written to {arguments.output} ({size / 1e6:.1f} MB)")


def _trained_run(config, run_dir: Path):
    """The finished run in run_dir with exactly `config`'s settings, trained now if the folder is new."""
    from digitlab import runs
    from digitlab.training.train import train

    if (run_dir / runs.METRICS_FILE).is_file():
        run = runs.read_run(run_dir)
        trained = run.config.training.to_dict()
        differs = {name for name, value in config.to_dict().items() if trained.get(name) != value}
        if run.metrics is None or run.metrics.status != "finished" or differs:
            sys.exit(f"{run_dir} holds another run (settings differ: {sorted(differs)}, status "
                     f"{run.metrics.status if run.metrics else 'none'}); give a new --run-dir")
        print(f"using the finished run in {run_dir}", flush=True)
        return run
    print(f"training {config.recipe} in {run_dir} (about 50 minutes on 2 cores) ...", flush=True)
    started = time.perf_counter()
    train(config, run_dir, verbose=1)
    print(f"trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return runs.read_run(run_dir)


# Settings that only the line model depends on: a run that differs in these alone keeps its classifier.
LINE_MODEL_SETTINGS = {"line_model_lines", "line_model_size"}
# Beside the line model of a run made with --reuse-classifier: where its classifier came from, and how the
# line model was trained (its presence marks a finished retraining).
RETRAINED_FILE = "line_model_retrained.json"


def _retrained_line_model(config, source_dir: Path, run_dir: Path):
    """A run in run_dir with source_dir's classifier and a line model trained now with `config`'s line model
    settings (or the one trained there before, when run_dir holds a finished retraining of source_dir).

    Returns:
        (run, what was retrained: a dict for the manifest).
    """
    import json
    import shutil

    from digitlab import runs
    from digitlab.backend import select_backend
    from digitlab.data import datasets
    from digitlab.training import line_model

    select_backend()  # Keras's backend (JAX) chosen before the line model imports Keras, as `train` does
    record_path = run_dir / RETRAINED_FILE
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("classifier_from") != str(source_dir.resolve()):
            sys.exit(f"{run_dir} holds a line model retrained for another run ({record.get('classifier_from')}); "
                     "give a new --run-dir")
        print(f"using the line model retrained before in {run_dir}", flush=True)
        return runs.read_run(run_dir), record
    source = runs.read_run(source_dir)
    trained = source.config.training.to_dict()
    differs = {name for name, value in config.to_dict().items() if trained.get(name) != value} - LINE_MODEL_SETTINGS
    if source.metrics is None or source.metrics.status != "finished" or differs:
        sys.exit(f"{source_dir} cannot lend its classifier (settings other than the line model's differ: "
                 f"{sorted(differs)}, status {source.metrics.status if source.metrics else 'none'})")
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(f"{run_dir} is not empty; give a new --run-dir for the retrained line model")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (runs.MODEL_FILE, runs.HISTORY_FILE, runs.METRICS_FILE):
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, run_dir / name)
    runs.write_json(run_dir / runs.CONFIG_FILE, dataclasses.replace(source.config, training=config).to_dict())
    print(f"training the line model again ({config.line_model_lines:,} lines, {config.line_model_size}) with "
          f"the classifier of {source_dir} ...", flush=True)
    (train_images, train_labels), _ = datasets.load("mnist")
    seconds = line_model.train_and_save(train_images, train_labels, config.line_model_lines, config.seed, run_dir,
                                        verbose=1, size=config.line_model_size)
    record = {"classifier_from": str(source_dir.resolve()), "classifier_trained_at": source.config.created_at,
              "line_model_seconds": round(seconds), "line_model_source_commit": _commit(),
              "line_model_trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": _machine()}
    runs.write_json(record_path, record)
    print(f"line model trained in {seconds / 60:.1f} min", flush=True)
    return runs.read_run(run_dir), record


def _export(run_dir: Path, output: Path) -> None:
    from digitlab.inference.export import export_run

    result = export_run(run_dir, output)
    print(f"exported {', '.join(path.name for path in result.paths)} (largest difference from Keras "
          f"{result.largest_difference:.1e})", flush=True)


def _load(classifier_path: Path, line_model_path: Path):
    """The exported reader, loaded as the bundled one is."""
    from digitlab.inference.loading import load_onnx_reader

    return load_onnx_reader(classifier_path, line_model_path, description=f"{RECIPE} (being built)")


def _recipe_description() -> str:
    from digitlab.training.recipes import RECIPES

    return RECIPES[RECIPE].description


def _training_data(config) -> dict[str, dict[str, str]]:
    """The SHA-256 of every data set file the training read (the catalog's, which every load verifies)."""
    from digitlab.data.catalog import DATASETS

    names = ["mnist"] + (["fashion-mnist"] if config.non_digit_pictures else [])
    return {name: dict(DATASETS[name].checksums) for name in names}


def _training(run, retrained: dict | None = None) -> dict[str, object]:
    """How long the run took, from its config's creation to its metrics, on what machine, with which fonts
    drawing its non-digits' letters (what the machine has installed: the run depends on them). For a line
    model trained again (`retrained`), the classifier's figures are its original run's, and `line_model`
    says that only the line model was trained again, when, in how long, from which source."""
    from digitlab.data.nondigits import find_truetype_fonts

    started = datetime.datetime.fromisoformat(run.config.created_at)
    finished = datetime.datetime.fromisoformat(run.metrics.finished_at)
    training = {"seconds": round((finished - started).total_seconds()),
                "line_model_seconds": round(run.metrics.line_model_seconds or 0),
                "classifier_fit_seconds": round(run.metrics.fit_seconds),
                "classifier_test_accuracy": run.metrics.test_accuracy,
                "command": f"digitlab train --recipe {RECIPE} --seed {run.config.training.seed} --run-dir RUN",
                "fonts": [Path(font).name for font in find_truetype_fonts()],
                "machine": _machine()}
    if retrained is not None:
        training["seconds"] += retrained["line_model_seconds"] - training["line_model_seconds"]
        training["line_model_seconds"] = retrained["line_model_seconds"]
        training["line_model"] = {
            "retrained": True,
            "note": "the classifier is the earlier run's, unchanged; only the line model was trained again "
                    "(same settings, this source tree's line model code), with scripts/build_bundled_reader.py "
                    "--reuse-classifier RUN",
            **{name: value for name, value in retrained.items() if name != "classifier_from"}}
        training["command"] += " (classifier); then scripts/build_bundled_reader.py --reuse-classifier RUN"
    return training


def _commit() -> str | None:
    """The git commit of this source tree, when it is one."""
    import subprocess

    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return found.stdout.strip() or None


def _machine() -> dict[str, object]:
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512": "avx512f" in flags, "python": platform.python_version(),
            "system": platform.platform(terse=True)}


def _without_speed(scores: dict) -> dict:
    return {name: value for name, value in scores.items() if name != "speed"}


if __name__ == "__main__":
    main()
