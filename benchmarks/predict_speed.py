"""How fast `digitlab predict` reads digits: one image in-process, a folder of 1,000 images prepared
in this process, in worker threads and in worker processes, and a folder of phone-sized photos.

    .venv/bin/python benchmarks/predict_speed.py [--model RUN_DIR] [--count 1000] [--repeats 3] [--photos 100]

Images are photo-like handwritten digits made from MNIST test digits (as in tests/test_predict.py):
dark ink on unevenly lit paper, 2x-7x, off-centre, noisy, half JPEG, some RGB; about 240x240 pixels.
Photos (--photos, 0 for none) are what a phone gives: JPEGs of 1600x1200 to 4032x3024 pixels
(portrait or landscape, quality 80-92) of an MNIST test digit 20-40% of the picture's height, on
unevenly lit paper with grain (benchmarks/start_up.py's `phone_photo`); they are read as `digitlab
predict` reads them (a large JPEG decoded at 1/2 to 1/8 scale, images.JPEG_DRAFT_SIZE), and once more
in this process decoded at full size, for comparison.
Without --model, the latest finished run under runs/ is used, or the tutorial's network is trained
first (about 10-20 s); `--model src/digitlab/bundled` uses the bundled reader (ONNX Runtime). The
three ways of preparing the folder take turns, --repeats rounds, so that other jobs on the machine
slow them alike; figures are medians, timed with time.perf_counter. CPU time per image (this process
and the workers, from time.process_time and /proc) is printed too, as it varies far less than
images/s when other jobs share the cores.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # start_up.py's phone_photo, for the photos

ROOT = Path(__file__).resolve().parents[1]
# What phones and scanners give (width, height); each photo is one of them, turned at random.
PHOTO_SIZES = ((1600, 1200), (2048, 1536), (3000, 2000), (3264, 2448), (4032, 3024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder or .keras file (default: latest run, else train one)")
    parser.add_argument("--count", type=int, default=1000, help="images in the folder")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the folder")
    parser.add_argument("--photos", type=int, default=100, help="phone-sized JPEG photos in a second folder")
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

    _one_image(classifier, paths)
    thread_preparer = ImagePreparer(processes=False)
    ways = {"in one process": None, f"{thread_preparer.workers} worker threads": thread_preparer,
            f"{process_preparer.workers} worker processes": process_preparer}
    _folder(classifier, ways, process_preparer, paths, labels, arguments.repeats, default)
    if arguments.photos:
        _photos(classifier, process_preparer, scratch, test_images, test_labels, arguments)
    for preparer in (thread_preparer, process_preparer):
        preparer.close()
    _end_to_end(scratch / "images", model)
    shutil.rmtree(scratch, ignore_errors=True)


def _one_image(classifier, paths) -> None:
    """One image, in-process: prepare + classify."""
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


def _folder(classifier, ways, process_preparer, paths, labels, repeats: int, default: str) -> None:
    """A folder of images, each way in turn, `repeats` rounds."""
    for preparer in ways.values():
        list(classifier.classify_files(paths[:64], preparer=preparer))  # workers up, batch shapes compiled
    workers = list(getattr(process_preparer._executor, "_processes", None) or {})
    speeds: dict[str, list[float]] = {way: [] for way in ways}
    cpu_per_image: dict[str, list[float]] = {way: [] for way in ways}
    accuracy = 0.0
    for _ in range(repeats):
        for way, preparer in ways.items():
            speed, cpu, accuracy = _timed_pass(classifier, paths, labels, preparer, workers)
            speeds[way].append(speed)
            cpu_per_image[way].append(cpu)
    for way in ways:
        print(f"folder of {len(paths)}, {way}: {statistics.median(speeds[way]):,.0f} images/s, "
              f"{1000 / statistics.median(speeds[way]):.2f} ms per image, CPU {_ms(cpu_per_image[way])} per image "
              f"(runs: {', '.join(f'{value:,.0f}' for value in speeds[way])})"
              f"{'  <- the default for many files' if default in way else ''}")
    print(f"accuracy {accuracy:.1%}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _timed_pass(classifier, paths, labels, preparer, workers: list[int]) -> tuple[float, float, float]:
    """One pass over the files: images/s, CPU seconds per image (all processes), accuracy."""
    cpu = _cpu_seconds(workers)
    started = time.perf_counter()
    results = list(classifier.classify_files(paths, preparer=preparer))
    speed = len(paths) / (time.perf_counter() - started)
    accuracy = sum(result.digit == label for result, label in zip(results, labels, strict=True)) / len(labels)
    return speed, (_cpu_seconds(workers) - cpu) / len(paths), accuracy


def _photos(classifier, process_preparer, scratch: Path, test_images, test_labels, arguments) -> None:
    """Phone-sized JPEG photos: with worker processes and in one process as `predict` reads them (a large
    JPEG decoded at reduced scale), and in one process decoded at full size, taking turns."""
    import numpy as np

    from digitlab.inference import images
    from start_up import phone_photo

    rng = np.random.default_rng(17)
    folder = scratch / "photos"
    folder.mkdir()
    paths, labels = [], []
    for index, pick in enumerate(rng.choice(len(test_images), size=arguments.photos, replace=False)):
        width, height = PHOTO_SIZES[index % len(PHOTO_SIZES)]
        size = (width, height) if rng.random() < 0.5 else (height, width)
        path = folder / f"photo-{index:04d}.jpg"
        path.write_bytes(phone_photo(test_images[pick], rng, size, quality=int(rng.integers(80, 93))))
        paths.append(path)
        labels.append(int(test_labels[pick]))
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    print(f"\n{len(paths)} phone-sized JPEG photos ({megabytes / len(paths):.1f} MB each on average) in {folder}")
    workers = list(getattr(process_preparer._executor, "_processes", None) or {})
    list(classifier.classify_files(paths[:8], preparer=process_preparer))
    ways = {f"{process_preparer.workers} worker processes": (process_preparer, images.JPEG_DRAFT_SIZE),
            "in one process": (None, images.JPEG_DRAFT_SIZE),
            "in one process, decoded at full size": (None, 1 << 30)}
    figures: dict[str, list[tuple[float, float, float]]] = {way: [] for way in ways}
    draft_size = images.JPEG_DRAFT_SIZE
    try:
        for _ in range(arguments.repeats):
            for way, (preparer, size) in ways.items():
                images.JPEG_DRAFT_SIZE = size  # in this process only: the workers keep their own
                figures[way].append(_timed_pass(classifier, paths, labels, preparer, workers))
    finally:
        images.JPEG_DRAFT_SIZE = draft_size
    for way, runs in figures.items():
        speed = statistics.median(run[0] for run in runs)
        print(f"photos, {way}: {speed:,.1f} images/s, {1000 / speed:.1f} ms per image, CPU "
              f"{_ms([run[1] for run in runs])} per image, accuracy {runs[-1][2]:.1%}")


def _end_to_end(folder: Path, model: Path) -> None:
    """The whole command, as a user runs it (includes Python start, Keras import, model load)."""
    for options in ([], ["--workers", "1"]):
        command = [str(Path(sys.executable).parent / "digitlab"), "predict", str(folder), "--model",
                   str(model), "--json", *options]
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        print(f"`digitlab predict <folder> --json{' ' if options else ''}{' '.join(options)}` end to end: "
              f"{elapsed:.2f} s for {completed.stdout.count(chr(10))} images (exit {completed.returncode})")


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
