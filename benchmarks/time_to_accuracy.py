"""Time to 99% test accuracy on MNIST, side by side: stock Keras's convnet against digitlab's recipes.

Each stack runs as a separate process, in turn, `--repeats` rounds; the clock runs from starting the
process to:
- keras-io's simple convnet in stock Keras on JAX (`keras_convnet.py`, its own `fit`): the end of the
  first epoch whose test accuracy reaches the target (evaluating after each epoch only to find it;
  those evaluations are left out of the time);
- `digitlab train --recipe speedrun` and `--recipe cnn`: the run's model and metrics saved, the whole
  recipe (an upper bound on the time to the target, which is checked on the final accuracy);
- for scale, the tutorial's own stack (Keras + TensorFlow, the 5-epoch MLP, about 97.9%), from
  .venv-tensorflow when it exists: its model and metrics saved.
Prints a Markdown table (median seconds, accuracies) and the ratios against stock Keras.

    .venv/bin/python benchmarks/time_to_accuracy.py
    .venv/bin/python benchmarks/time_to_accuracy.py --repeats 3 --skip cnn
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = {
    "keras-convnet": "keras-io convnet, stock Keras 3 on JAX (`fit`)",
    "speedrun": "`digitlab train --recipe speedrun`",
    "cnn": "`digitlab train --recipe cnn` (the keras-io convnet, fast loop)",
    "tutorial": "tutorial's stack: Keras + TensorFlow, 5-epoch MLP (for scale)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default 0.99)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds, stacks alternating (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the digitlab runs")
    parser.add_argument("--skip", action="append", default=[], choices=list(STACKS), help="leave a stack out")
    arguments = parser.parse_args()

    from digitlab.data import datasets

    cache = datasets.fetch("mnist").directory
    scratch = Path(tempfile.mkdtemp(prefix="digitlab-time-to-accuracy-"))
    stacks = [name for name in STACKS if name not in arguments.skip]
    if "tutorial" in stacks and not (ROOT / ".venv-tensorflow" / "bin" / "python").is_file():
        print("note: .venv-tensorflow is missing (bash scripts/setup tensorflow .venv-tensorflow); tutorial skipped")
        stacks.remove("tutorial")
    results: dict[str, list[dict]] = {name: [] for name in stacks}
    for round_number in range(arguments.repeats):
        for name in stacks:
            result = run_stack(name, cache, scratch / f"{name}-{round_number}", arguments.target, arguments.seed)
            results[name].append(result)
            print(f"round {round_number + 1} {name}: {json.dumps(result)}", flush=True)
    print_table(results, arguments.target)


def run_stack(name: str, cache: Path, output: Path, target: float, seed: int) -> dict:
    """Run one stack as a process; return its seconds to the target (or to saved) and its accuracy."""
    environment = dict(os.environ)
    if name == "keras-convnet":
        environment["KERAS_BACKEND"] = "jax"
        command = [sys.executable, str(ROOT / "benchmarks" / "keras_convnet.py"), str(cache), str(target)]
    elif name == "tutorial":
        environment["KERAS_BACKEND"] = "tensorflow"
        command = [str(ROOT / ".venv-tensorflow" / "bin" / "python"), str(ROOT / "benchmarks" / "tutorial_stack.py"),
                   str(cache), str(output)]
    else:
        command = [str(Path(sys.executable).parent / "digitlab"), "train", "--recipe", name, "--seed", str(seed),
                   "--run-dir", str(output), "--quiet"]
    started_at = time.time()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise SystemExit(f"{name} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    if name == "keras-convnet":
        reached = json.loads(completed.stdout.strip().splitlines()[-1])
        seconds = reached["reached_at"] - started_at if reached["reached_at"] else None
        return {"seconds": seconds, "accuracy": reached.get("accuracy"), "epochs": reached["epoch"],
                "epoch_seconds": reached["epoch_seconds"]}
    if name == "tutorial":
        saved = json.loads(completed.stdout.strip().splitlines()[-1])
        return {"seconds": saved["saved_at"] - started_at, "accuracy": saved["test_accuracy"], "epochs": 5}
    metrics = json.loads((output / "metrics.json").read_text())
    return {"seconds": (output / "metrics.json").stat().st_mtime - started_at, "accuracy": metrics["test_accuracy"],
            "epochs": metrics["epochs_completed"], "epoch_seconds": metrics["epoch_seconds"],
            "compile_seconds": metrics["compile_seconds"], "fit_loop": metrics["fit_loop"]}


def print_table(results: dict[str, list[dict]], target: float) -> None:
    medians = {name: statistics.median(run["seconds"] for run in runs if run["seconds"] is not None)
               if any(run["seconds"] is not None for run in runs) else None for name, runs in results.items()}
    print(f"\n| stack | seconds (median) | test accuracy | epochs | reached {target:.1%} |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        accuracies = ", ".join(f"{run['accuracy']:.2%}" if run["accuracy"] is not None else "-" for run in runs)
        reached = all(run["accuracy"] is not None and run["accuracy"] >= target for run in runs)
        seconds = f"{medians[name]:.1f}" if medians[name] is not None else "not reached"
        print(f"| {STACKS[name]} | {seconds} | {accuracies} | {runs[0]['epochs']} | {'yes' if reached else 'no'} |")
    base = medians.get("keras-convnet")
    for name in ("speedrun", "cnn", "tutorial"):
        if base and medians.get(name):
            print(f"stock Keras convnet / {name}: {base / medians[name]:.1f}x")


if __name__ == "__main__":
    main()
