"""How fast `digitlab predict` reads digits: one image in-process, and a folder of 1,000 images
prepared in this process, in worker threads and in worker processes.

    .venv/bin/python benchmarks/predict_speed.py [--model RUN_DIR] [--count 1000] [--repeats 3]

Images are photo-like handwritten digits made from MNIST test digits (as in tests/test_predict.py):
dark ink on unevenly lit paper, 2x-7x, off-centre, noisy, half JPEG, some RGB; about 240x240 pixels.
Without --model, the latest finished run under runs/ is used, or the tutorial's network is trained
first (about 10-20 s). The three ways of preparing the folder take turns, --repeats rounds, so that
other jobs on the machine slow them alike; figures are medians, timed with time.perf_counter. CPU
time per image (this process and the workers, from time.process_time and /proc) is printed too, as
it varies far less than images/s when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder or .keras file (default: latest run, else train one)")
    parser.add_argument("--count", type=int, default=1000, help="images in the folder")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the folder")
    arguments = parser.parse_args()

    # Worker processes first, before Keras and JAX are imported, so they are forked (fast) rather
    # than spawned; threads can start at any time.
    from digitlab.backend import available_cores
    from digitlab.inference.preparer import ImagePreparer

    process_preparer = ImagePreparer(processes=True)
    # What `digitlab predict` uses for many files: ImagePreparer's default.
    default = "worker processes" if inspect.signature(ImagePreparer).parameters["processes"].default else "worker threads"

    from digitlab.data import datasets
    from digitlab.data.synthetic import write_handwritten
    from digitlab.inference.loading import load_classifier

    _, (test_images, test_labels) = datasets.load("mnist")
    scratch = Path(tempfile.mkdtemp(prefix="digitlab-predict-speed-"))
    model = arguments.model or _existing_run() or _train_tutorial(scratch)
    written = write_handwritten(scratch / "images", test_images, test_labels, arguments.count, seed=7)
    paths = [path for path, _ in written]
    labels = [label for _, label in written]
    print(f"{len(paths)} photo-like images in {scratch / 'images'}, model {model}, {available_cores()} cores")

    classifier = load_classifier(model)

    # --- one image, in-process: prepare + classify ----------------------------------------------
    for path in paths[:20]:
        classifier.predict(path)  # compile the batch-of-1 shape, warm the caches
    single, preparing, model_only = [], [], []
    for path in paths[:300]:
        started = time.perf_counter()
        classifier.predict(path)
        single.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepared = classifier.prepare(path)
        preparing.append(time.perf_counter() - started)
        started = time.perf_counter()
        classifier.probabilities(prepared[None])
        model_only.append(time.perf_counter() - started)
    print(f"one image in-process (prepare + classify): median {_ms(single)}, 90th percentile "
          f"{_ms(single, 0.9)}  (prepare {_ms(preparing)}, model call {_ms(model_only)})")

    # --- a folder of images, three ways, taking turns ---------------------------------------------
    thread_preparer = ImagePreparer(processes=False)
    ways = {"in one process": None, f"{thread_preparer.workers} worker threads": thread_preparer,
            f"{process_preparer.workers} worker processes": process_preparer}
    for preparer in ways.values():
        list(classifier.classify_files(paths[:64], preparer=preparer))  # workers up, batch shapes compiled
    workers = list(getattr(process_preparer._executor, "_processes", None) or {})
    speeds: dict[str, list[float]] = {way: [] for way in ways}
    cpu_per_image: dict[str, list[float]] = {way: [] for way in ways}
    accuracy = 0.0
    for _ in range(arguments.repeats):
        for way, preparer in ways.items():
            cpu = _cpu_seconds(workers)
            started = time.perf_counter()
            results = list(classifier.classify_files(paths, preparer=preparer))
            speeds[way].append(len(paths) / (time.perf_counter() - started))
            cpu_per_image[way].append((_cpu_seconds(workers) - cpu) / len(paths))
            accuracy = sum(result.digit == label for result, label in zip(results, labels, strict=True)) / len(labels)
    for preparer in (thread_preparer, process_preparer):
        preparer.close()
    for way in ways:
        print(f"folder of {len(paths)}, {way}: {statistics.median(speeds[way]):,.0f} images/s, "
              f"{1000 / statistics.median(speeds[way]):.2f} ms per image, CPU {_ms(cpu_per_image[way])} per image "
              f"(runs: {', '.join(f'{value:,.0f}' for value in speeds[way])})"
              f"{'  <- the default for many files' if default in way else ''}")
    print(f"accuracy {accuracy:.1%}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    # --- the whole command, as a user runs it (includes Python start, Keras import, model load) ------
    for options in ([], ["--workers", "1"]):
        command = [str(Path(sys.executable).parent / "digitlab"), "predict", str(scratch / "images"), "--model",
                   str(model), "--json", *options]
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        print(f"`digitlab predict <folder> --json{' ' if options else ''}{' '.join(options)}` end to end: "
              f"{elapsed:.2f} s for {completed.stdout.count(chr(10))} images (exit {completed.returncode})")
    shutil.rmtree(scratch, ignore_errors=True)


def _existing_run() -> Path | None:
    from digitlab import runs
    from digitlab.errors import RunFolderError

    try:
        return runs.latest_finished_run(ROOT / "runs")
    except RunFolderError:
        return None


def _train_tutorial(scratch: Path) -> Path:
    from digitlab.config import TrainingConfig
    from digitlab.training.train import train

    print("no finished run under runs/: training the tutorial's network first")
    return train(TrainingConfig(), run_dir=scratch / "run", verbose=0).run_dir


def _cpu_seconds(workers: list[int]) -> float:
    """CPU seconds used so far by this process (all its threads) and the given worker processes
    (from Linux's /proc; where that cannot be read, this process's alone)."""
    total = time.process_time()
    try:
        for pid in workers:
            with open(f"/proc/{pid}/schedstat") as stat:  # nanoseconds on a CPU (stat counts 10 ms ticks)
                total += int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return total


def _ms(seconds: list[float], fraction: float = 0.5) -> str:
    ordered = sorted(seconds)
    return f"{ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000:.2f} ms"


if __name__ == "__main__":
    main()
