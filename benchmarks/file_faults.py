"""The files `digitlab predict` and `digitlab read` read and write, broken on purpose: what each case ends in.

    .venv/bin/python benchmarks/file_faults.py [--model RUN] [--compare-src DIR] [--failures 5000]

Each case runs `digitlab` in a fresh process on small images made here, with a time limit (a command
still running after it counts as a hang and is killed). For each case it prints the exit status, the
seconds taken, whether a traceback was printed, whether an input or an existing file was changed (data
lost), and what the case checks (the last stderr line's length for a long list of failures; whether
the JSON output is valid UTF-8 and gives the file name's bytes back for a name that is not UTF-8).

Without --model a run is trained first (`digitlab train --epochs 1`, about a minute on 2 cores, the
MNIST cache in ~/.cache/digitlab). --compare-src DIR runs every case again with another checkout's
`src` first on PYTHONPATH, side by side (for example `git worktree add /tmp/before <commit>` and
`--compare-src /tmp/before/src`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Seconds a command may take before it counts as a hang.
HANG_SECONDS = 240


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a run folder to predict and read with (default: train one)")
    parser.add_argument("--compare-src", type=Path, help="another checkout's src folder, run on the same cases")
    parser.add_argument("--failures", type=int, default=5000, help="files that fail in the long-list case")
    arguments = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="digitlab-file-faults-"))
    try:
        model = arguments.model or train_model(scratch / "run")
        sources = {"this checkout": ROOT / "src"}
        if arguments.compare_src:
            sources[str(arguments.compare_src)] = arguments.compare_src.resolve()
        for label, source in sources.items():
            print(f"\n## {label}\n")
            print("| case | exit | seconds | traceback | data lost | hang | checked |")
            print("|---|---|---|---|---|---|---|")
            for name, case in cases(arguments.failures).items():
                folder = scratch / "cases" / f"{len(label)}-{name}"
                folder.mkdir(parents=True)
                outcome = case(Runner(source, model, folder))
                print(f"| {name} | {outcome['exit']} | {outcome['seconds']:.1f} | {yes(outcome['traceback'])} | "
                      f"{yes(outcome.get('lost', False))} | {yes(outcome['hung'])} | {outcome.get('checked', '')} |",
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} cores; Python {sys.version.split()[0]}")


class Runner:
    """Runs `digitlab` with one checkout's package, a model, in one case's folder."""

    def __init__(self, source: Path, model: Path, folder: Path) -> None:
        self.source, self.model, self.folder = source, model, folder

    def __call__(self, *arguments: str | bytes) -> dict:
        environment = {**os.environ, "PYTHONPATH": str(self.source)}
        command = [sys.executable, "-c", "from digitlab.cli import main; main()", *map(os.fsencode, arguments),
                   b"--model", os.fsencode(self.model)]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=self.folder, env=environment, capture_output=True,
                                  timeout=HANG_SECONDS)
            code, out, err, hung = done.returncode, done.stdout, done.stderr, False
        except subprocess.TimeoutExpired as expired:
            code, out, err, hung = "killed", expired.stdout or b"", expired.stderr or b"", True
        return {"exit": code, "seconds": time.perf_counter() - started, "out": out, "err": err, "hung": hung,
                "traceback": b"Traceback (most recent call last)" in err}


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def images(folder: Path, count: int = 3) -> Path:
    """`count` dark digits on light paper, PNG."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        picture = Image.new("L", (120, 100), 235)
        ImageDraw.Draw(picture).line((40 + 10 * index, 15, 60, 85), fill=20, width=9)
        picture.save(folder / f"d{index}.png")
    return folder


def fingerprint(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())
            if path.is_file()}


def into_inputs(command: str, option: str) -> Callable[[Runner], dict]:
    """`digitlab COMMAND imgs/ OPTION imgs/`: the outputs' folder is the inputs'."""
    def case(run: Runner) -> dict:
        folder = images(run.folder / "imgs")
        before = fingerprint(folder)
        outcome = run(command, str(folder), option, str(folder))
        return {**outcome, "lost": fingerprint(folder) != before}
    return case


def over_existing(run: Runner) -> dict:
    folder, output = images(run.folder / "imgs"), run.folder / "out"
    output.mkdir()
    (output / "d1.png").write_bytes(b"someone's file")
    outcome = run("predict", str(folder), "--save-preprocessed", str(output))
    return {**outcome, "lost": (output / "d1.png").read_bytes() != b"someone's file"}


def fifo(run: Runner) -> dict:
    folder = images(run.folder / "imgs", 1)
    os.mkfifo(folder / "fifo.png")
    return run("predict", str(folder / "fifo.png"), str(folder / "d0.png"))


def device(run: Runner) -> dict:
    return run("predict", "/dev/zero")


def proc_folder(run: Runner) -> dict:
    outcome = run("predict", str(images(run.folder / "imgs")), "--save-preprocessed", "/proc/digitlab-out")
    last = outcome["err"].decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {**outcome, "checked": f"advice: {'free some space' if 'free some space' in last[0] else 'not disk space'}"}


def odd_names(run: Runner) -> dict:
    from PIL import Image

    folder = images(run.folder / "imgs", 1)
    raw = os.fsencode(folder) + b"/bad\xff\x1b[31m\nname.png"
    with Image.open(folder / "d0.png") as picture:
        picture.save(raw.decode("utf-8", "surrogateescape"), format="PNG")
    text = run("predict", str(folder))
    outcome = run("predict", str(folder), "--json")
    try:
        results = [json.loads(line.decode("utf-8")) for line in outcome["out"].splitlines()]
        recovered = any(base64.b64decode(result.get("path_bytes", "")) == raw for result in results)
        utf8 = b"\\udc" not in outcome["out"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        recovered = utf8 = False
    raw_escape = b"\x1b" in text["out"] + text["err"]
    checked = (f"JSON strings valid Unicode: {yes(utf8)}, name's bytes given back: {yes(recovered)}; "
               f"text prints the escape character raw: {yes(raw_escape)}")
    return {**outcome, "traceback": outcome["traceback"] or text["traceback"], "checked": checked}


def many_failures(count: int) -> Callable[[Runner], dict]:
    def case(run: Runner) -> dict:
        folder = run.folder / "broken"
        folder.mkdir()
        for index in range(count):
            (folder / f"broken-{index:05d}.png").write_bytes(b"not an image")
        outcome = run("predict", str(folder))
        last = outcome["err"].rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return {**outcome, "checked": f"last stderr line {len(last):,} bytes"}
    return case


def cases(failures: int) -> dict[str, Callable[[Runner], dict]]:
    """Each case's name (what it runs) and the function that runs it."""
    return {
        "predict imgs/ --save-preprocessed imgs/": into_inputs("predict", "--save-preprocessed"),
        "read imgs/ --save-annotated imgs/": into_inputs("read", "--save-annotated"),
        "predict --save-preprocessed over an existing file": over_existing,
        "predict fifo.png good.png": fifo,
        "predict /dev/zero": device,
        "predict --save-preprocessed /proc/digitlab-out": proc_folder,
        "predict a name not UTF-8, with ESC and newline": odd_names,
        f"predict {failures:,} files that fail": many_failures(failures),
    }


def train_model(run_dir: Path) -> Path:
    print(f"training a model for the cases: digitlab train --epochs 1 --run-dir {run_dir}", flush=True)
    subprocess.run([sys.executable, "-c", "from digitlab.cli import main; main()", "train", "--epochs", "1",
                    "--run-dir", str(run_dir)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return run_dir


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            return next(line.split(":", 1)[1].strip() for line in stream if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    main()
