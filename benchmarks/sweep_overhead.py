"""The Ray executor's overhead per trial against local processes (`--jobs`), side by side in one run.

Runs the tutorial-claims study (`digitlab sweep --study tutorial-claims --epochs 1`) from scratch both
ways, as a user would, each in a fresh sweep folder: `--jobs N` (N local processes), then `--executor
ray` on a Ray started on this machine for the sweep (or the cluster at --address) with the same number
of trials at once (N CPUs, one per trial). Prints each wall time, the extra seconds per trial and the
ratio, and checks that both trained the same trials to the same accuracies.

    .venv/bin/python benchmarks/sweep_overhead.py                    # 7 trials (1 seed), 2 at once
    .venv/bin/python benchmarks/sweep_overhead.py --seeds 3          # the study's 21 trials
    .venv/bin/python benchmarks/sweep_overhead.py --rounds 2         # twice each way, alternating
    .venv/bin/python benchmarks/sweep_overhead.py --address HEAD:6379
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_study(way: list[str], sweep_dir: Path, seeds: int, epochs: int) -> float:
    """Wall seconds of one `digitlab sweep --study tutorial-claims` run, from the command's start to its end."""
    command = [sys.executable, "-m", "digitlab", "sweep", "--study", "tutorial-claims", "--epochs", str(epochs),
               "--seeds", str(seeds), "--sweep-dir", str(sweep_dir), *way]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return seconds


def read_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "sweep.csv", newline="") as stream:
        return {row["trial"]: row for row in csv.DictReader(stream)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds per configuration (7 trials each)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trials at once, both ways")
    parser.add_argument("--address", help="a Ray cluster's HOST:PORT (default: a Ray started for the sweep)")
    parser.add_argument("--rounds", type=int, default=1, help="runs each way, alternating which goes first; "
                        "the times are summed")
    arguments = parser.parse_args()

    ways = {"local": ["--jobs", str(arguments.jobs)],
            "ray": ["--executor", "ray"] + (["--address", arguments.address] if arguments.address else [])}
    seconds = {"local": 0.0, "ray": 0.0}
    with tempfile.TemporaryDirectory(prefix="digitlab-sweep-overhead-") as scratch:
        for round_number in range(arguments.rounds):
            order = ["local", "ray"] if round_number % 2 == 0 else ["ray", "local"]
            for way in order:
                folder = Path(scratch) / f"{way}-{round_number}"
                seconds[way] += run_study(ways[way], folder, arguments.seeds, arguments.epochs)
                print(f"round {round_number + 1}, {way}: {seconds[way]:.1f} s so far", flush=True)
        local_rows, ray_rows = read_rows(Path(scratch) / "local-0"), read_rows(Path(scratch) / "ray-0")
    local_seconds, ray_seconds = seconds["local"] / arguments.rounds, seconds["ray"] / arguments.rounds

    trials = len(local_rows)
    same = all(ray_rows[name]["test_accuracy"] == row["test_accuracy"] for name, row in local_rows.items())
    nodes = sorted({row["node"] for row in ray_rows.values()})
    local_fit = sum(float(row["fit_seconds"]) for row in local_rows.values())
    ray_fit = sum(float(row["fit_seconds"]) for row in ray_rows.values())
    print(f"tutorial-claims study, --epochs {arguments.epochs}, {arguments.seeds} seed(s): {trials} trials, "
          f"{arguments.jobs} at once; {os.cpu_count()} CPUs")
    print(f"mean wall time of {arguments.rounds} run(s) each way")
    print(f"local --jobs {arguments.jobs}: {local_seconds:7.1f} s wall ({local_fit:.1f} s of fit in the first run)")
    print(f"--executor ray:   {ray_seconds:7.1f} s wall ({ray_fit:.1f} s of fit in the first run; "
          f"nodes: {', '.join(nodes)})")
    print(f"overhead: {(ray_seconds - local_seconds) / trials:+.2f} s per trial; Ray / local wall time "
          f"{ray_seconds / local_seconds:.3f} ({(ray_seconds / local_seconds - 1) * 100:+.1f}%)")
    print(f"same test accuracy for every trial: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
