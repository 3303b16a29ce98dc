"""How long `digitlab predict` takes from process start to the answer, and what it imports on the way.

    .venv/bin/python benchmarks/start_up.py [--repeats 7] [--model MODEL] [--compare-src DIR] [--top 15]

Each command runs in a fresh process, in an empty folder (no runs/ there: without --model the reader
bundled in the package answers, on ONNX Runtime), after one untimed run that writes its bytecode:

- `digitlab predict digit.png`: a photo-like MNIST test digit of about 240x240 pixels;
- `digitlab predict photo.jpg`: a phone-sized photo (3000x2000 JPEG, quality 90) of an MNIST test
  digit drawn large on unevenly lit paper;
- `digitlab --help`.

Commands take turns, --repeats rounds, so that other jobs on the machine slow them alike. Printed: the
median and fastest wall time, the median CPU time (user + sys of the process and its children, from
os.wait4) and the largest resident memory, and the answer each gave. Then one more run of each
predict command under `python -X importtime`: the packages that took longest to import, and whether
Keras, JAX, SciPy or matplotlib were imported at all; with a Keras model, the programs JAX compiled.

--compare-src DIR times another checkout's `src` folder the same way, in the same rounds (its
package is put first on PYTHONPATH; give it the bundled reader too, for example
`git archive <commit> src | tar -x -C /tmp/before && cp -r src/digitlab/bundled /tmp/before/src/digitlab/`).
Bytecode goes to a scratch folder (PYTHONPYCACHEPREFIX) as an installed package has it, whatever
PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Packages whose import on the predict path is worth knowing about (none of them is needed there).
HEAVY = ("keras", "jax", "jaxlib", "tensorflow", "torch", "scipy", "matplotlib")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each command")
    parser.add_argument("--model", type=Path, help="a model for predict (default: none, the bundled reader)")
    parser.add_argument("--compare-src", type=Path, help="another checkout's src folder, timed in the same rounds")
    parser.add_argument("--top", type=int, default=15, help="packages listed by import time")
    parser.add_argument("--write-images", type=Path, help=argparse.SUPPRESS)  # what the child process below does
    arguments = parser.parse_args()
    if arguments.write_images:
        write_images(arguments.write_images)
        return

    scratch = Path(tempfile.mkdtemp(prefix="digitlab-start-up-"))
    workdir = scratch / "empty"
    workdir.mkdir()
    # Made in a child process: this one stays small, and the memory each command reports is its own (a
    # child's peak memory counts the parent's, as it was when the child was forked).
    subprocess.run([sys.executable, __file__, "--write-images", str(scratch)], check=True)
    files = [scratch / "digit.png", scratch / "photo.jpg"]
    model = ["--model", str(arguments.model.resolve())] if arguments.model else []
    commands = {f"predict {path.name}": ["predict", str(path), *model] for path in files}
    commands["--help"] = ["--help"]
    variants = {"this checkout": environment(scratch / "pycache", None)}
    if arguments.compare_src:
        variants[f"{arguments.compare_src}"] = environment(scratch / "pycache-compare", arguments.compare_src.resolve())
    executable = str(Path(sys.executable).parent / "digitlab")

    print(f"{len(commands)} commands x {len(variants)} checkouts, {arguments.repeats} rounds, in {workdir}; "
          f"model: {arguments.model or 'none named (the bundled reader)'}; {os.cpu_count()} cores")
    for variant_environment in variants.values():  # write the bytecode, warm the page cache
        for command in commands.values():
            run([executable, *command], workdir, variant_environment)
    results: dict[tuple[str, str], list[dict]] = defaultdict(list)
    loads = []
    for _ in range(arguments.repeats):
        for name, command in commands.items():
            for variant, variant_environment in variants.items():
                results[(name, variant)].append(run([executable, *command], workdir, variant_environment))
        loads.append(os.getloadavg()[0])
    print_timings(commands, variants, results)
    busy = max(loads) > (os.cpu_count() or 1)
    print(f"load average during the rounds: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
          f"{': other jobs shared the cores, and wall times grow more than CPU times' if busy else ''}")
    for variant, variant_environment in variants.items():
        for name, command in commands.items():
            if command[0] == "predict":
                print_imports(f"{name} ({variant})", [sys.executable, "-X", "importtime", "-m", "digitlab", *command],
                              workdir, variant_environment, arguments.top)
    shutil.rmtree(scratch, ignore_errors=True)


def write_images(folder: Path) -> None:
    """A photo-like digit as PNG (about 240x240) and a phone-sized photo of one as JPEG (3000x2000)."""
    import numpy as np

    from digitlab.data import datasets
    from digitlab.data.synthetic import photo_like_handwritten

    _, (test_images, test_labels) = datasets.load("mnist")
    rng = np.random.default_rng(5)
    png = folder / "digit.png"
    while True:  # a PNG of about the benchmark's typical size
        data, suffix = photo_like_handwritten(test_images[0], rng)
        if suffix == ".png" and 200 <= _png_width(data) <= 300:
            png.write_bytes(data)
            break
    jpeg = folder / "photo.jpg"
    jpeg.write_bytes(phone_photo(test_images[0], rng, (3000, 2000)))
    print(f"images: {png.name} ({_png_width(png.read_bytes())} px wide, {png.stat().st_size:,} bytes) and "
          f"{jpeg.name} (3000x2000, {jpeg.stat().st_size:,} bytes), both MNIST test digit 0, a {int(test_labels[0])}")


def phone_photo(mnist_digit, rng, size: tuple[int, int], quality: int = 90) -> bytes:
    """An MNIST digit (28x28 uint8) drawn large, dark on unevenly lit paper, in colour with grain, as a
    JPEG of `size` (width, height) pixels: what a phone camera gives. The digit's height is 20-40% of
    the picture's, off-centre."""
    import numpy as np
    from PIL import Image

    width, height = size
    digit_size = round(min(size) * rng.uniform(0.2, 0.4))
    left = int(rng.integers(0, width - digit_size))
    top = int(rng.integers(0, height - digit_size))
    ink = np.zeros((height, width), dtype=np.float32)
    ink[top:top + digit_size, left:left + digit_size] = np.asarray(
        Image.fromarray(mnist_digit).resize((digit_size, digit_size), Image.Resampling.BICUBIC), np.float32) / 255
    # Light falling off across the page, as data/synthetic.py lights its photos (a gradient in some
    # direction and a vignette): computed on a coarse grid, scaled up smooth.
    rows, columns = np.mgrid[0:height // 16, 0:width // 16].astype(np.float32)
    rows, columns = rows / max(len(rows) - 1, 1) - 0.5, columns / max(rows.shape[1] - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    coarse = np.clip(0.85 + (np.cos(angle) * columns + np.sin(angle) * rows) * rng.uniform(0.2, 0.45)
                     - (columns ** 2 + rows ** 2) * rng.uniform(0.0, 0.4), 0.45, 1.0)
    light = np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize((width, height),
                                                                                Image.Resampling.BILINEAR))
    page = (rng.uniform(0.8, 0.95) - ink * rng.uniform(0.6, 0.75)) * light * 255
    tile = rng.normal(0, 4, size=(256, 256)).astype(np.float32)  # sensor grain, tiled: fast to make
    page += np.tile(tile, (height // 256 + 1, width // 256 + 1))[:height, :width]
    tint = np.array([1.0, 0.97, 0.92], dtype=np.float32)
    rgb = np.clip(page[..., None] * tint, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def environment(pycache: Path, source: Path | None) -> dict[str, str]:
    """The environment each command runs in: bytecode kept (as installed), another checkout first if given."""
    variables = {name: value for name, value in os.environ.items()
                 if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONPROFILEIMPORTTIME")}
    variables["PYTHONPYCACHEPREFIX"] = str(pycache)
    if source is not None:
        variables["PYTHONPATH"] = str(source)
    return variables


def run(command: list[str], workdir: Path, variables: dict[str, str]) -> dict:
    """Run one command to its end: wall seconds, CPU seconds (user + sys, its children too), peak memory."""
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=workdir, env=variables, stdout=output, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)  # its own resource usage, which Popen.wait would not give
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        answer, error_text = output.read().decode(), errors.read().decode()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} exited with {process.returncode}:\n{error_text}")
    first_line = answer.splitlines()[0] if answer else ""
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "answer": first_line.split(": ", 1)[-1][:40] if first_line.startswith("/") else "(help)"}


def print_timings(commands, variants, results) -> None:
    width = max(len(name) for name in commands) + max(len(variant) for variant in variants) + 3
    for name in commands:
        for variant in variants:
            runs = results[(name, variant)]
            walls, cpus = [entry["wall"] for entry in runs], [entry["cpu"] for entry in runs]
            label = f"{name} [{variant}]"
            print(f"  {label:<{width}} wall median {statistics.median(walls):.3f} s (fastest {min(walls):.3f}), "
                  f"CPU median {statistics.median(cpus):.3f} s, memory {max(entry['rss_mb'] for entry in runs):.0f} MB"
                  f"  {runs[-1]['answer']}")


def print_imports(title: str, command: list[str], workdir: Path, variables: dict[str, str], top: int) -> None:
    """One run under -X importtime: the time each package's own modules took to import (summed by
    top-level package), whether heavy ones were imported, and what JAX compiled, if it ran."""
    completed = subprocess.run(command, cwd=workdir, env={**variables, "JAX_LOG_COMPILES": "1"},
                               capture_output=True, text=True)
    by_package: dict[str, int] = defaultdict(int)
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            by_package[match[2].split(".")[0]] += int(match[1])
    heavy = sorted(set(by_package) & set(HEAVY))
    # JAX_LOG_COMPILES logs each program it compiles or finds in its persistent cache, and says which.
    programs = completed.stderr.count("Finished XLA compilation")
    cached = completed.stderr.count("Persistent compilation cache hit")
    compiled = f"; JAX made {programs} programs ({programs - cached} compiled, {cached} from its cache)" if programs else ""
    print(f"\nimports of `digitlab {' '.join(command[5:])}` ({title}): {sum(by_package.values()) / 1e6:.2f} s "
          f"in all (wall, slowed by -X importtime itself); heavy packages imported: {', '.join(heavy) or 'none'}"
          f"{compiled}")
    for package, microseconds in sorted(by_package.items(), key=lambda item: -item[1])[:top]:
        print(f"  {microseconds / 1000:8.1f} ms  {package}")


def _png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")  # the IHDR chunk's width


if __name__ == "__main__":
    main()
