"""Training speed, side by side: the tutorial's stack, stock Keras 3 on JAX, and `digitlab train`.

Runs each as a separate process, alternating repeats so that a noisy shared machine affects all
three alike, after measuring the machine's float32 matmul peak. For each it reports end-to-end wall
time (process start to model and metrics saved; also the time until the process has exited, which
adds the interpreter's teardown), `fit` time, steady-state seconds per epoch
(median of epochs 2..5), images per second, achieved GFLOP/s and share of the peak, peak memory
(RSS), and test accuracy; then the ratios of digitlab to the others. Prints a Markdown table and
writes JSON.

    .venv/bin/python benchmarks/train_speed.py                       # 3 rounds, all stacks
    .venv/bin/python benchmarks/train_speed.py --repeats 1 --skip tutorial

The tutorial's stack (Keras on TensorFlow) runs from .venv-tensorflow (made by `bash scripts/test`
or `bash scripts/setup tensorflow .venv-tensorflow`); it is skipped, with a note, when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Forward + backward FLOP per image of the tutorial's network: 3 x 2 x (784*512 + 512*10).
FLOP_PER_IMAGE = 3 * 2 * (784 * 512 + 512 * 10)
TRAINING_IMAGES = 60_000
FLOP_PER_EPOCH = FLOP_PER_IMAGE * TRAINING_IMAGES
# What is compared, in the order of the table.
STACKS = {
    "tutorial": "tutorial's stack: Keras + TensorFlow, plain fit",
    "keras-jax": "Keras 3 on JAX, plain fit",
    "digitlab": "`digitlab train` (defaults)",
    "digitlab-2dev": "`digitlab train --distribute data-parallel`, 1 process x 2 CPU devices",
    "digitlab-2proc": "`digitlab train --distribute data-parallel`, 2 processes x 1 CPU device",
}


def measure_matmul_peak(size: int = 4096, repeats: int = 5) -> dict:
    """Best float32 GFLOP/s of NumPy's and JAX's matmul, each in a fresh process."""
    code = f"""
import json, time
import numpy as np

def best_seconds(multiply):
    multiply()  # warm up (and compile, for JAX)
    times = []
    for _ in range({repeats}):
        started = time.perf_counter()
        multiply()
        times.append(time.perf_counter() - started)
    return min(times)

a = np.random.default_rng(0).random(({size}, {size}), dtype=np.float32)
b = np.random.default_rng(1).random(({size}, {size}), dtype=np.float32)
numpy_seconds = best_seconds(lambda: a @ b)
import jax, jax.numpy as jnp
ja, jb, jit_matmul = jnp.asarray(a), jnp.asarray(b), jax.jit(jnp.matmul)
jax_seconds = best_seconds(lambda: jit_matmul(ja, jb).block_until_ready())
flop = 2 * {size} ** 3
print(json.dumps({{"numpy_gflops": flop / numpy_seconds / 1e9, "jax_gflops": flop / jax_seconds / 1e9,
                  "device": str(jax.devices()[0])}}))
"""
    # Older OpenBLAS builds need these on some CPUs; they slow a current NumPy, so measure without.
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_with_rss(commands: list[tuple[list[str], dict]]) -> tuple[float, float, str, float]:
    """Run children together; return (wall seconds until all exit, the largest peak RSS in MB, stdout
    of the first, the clock time (time.time) they were started at)."""
    started_at = time.time()
    started = time.perf_counter()
    outputs, processes = [], []
    for command, environment in commands:
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115  (read after the runs)
        outputs.append((out, err))
        processes.append(subprocess.Popen(command, stdout=out, stderr=err, text=True, env=environment))
    peak_rss, failures = 0.0, []
    for process, (_, err) in zip(processes, outputs, strict=True):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak_rss = max(peak_rss, usage.ru_maxrss / 1024)
        if process.returncode != 0:
            err.seek(0)
            failures.append(f"{' '.join(process.args)} failed ({process.returncode}):\n{err.read()[-2000:]}")
    wall = time.perf_counter() - started
    outputs[0][0].seek(0)
    stdout = outputs[0][0].read()
    for out, err in outputs:
        out.close()
        err.close()
    if failures:
        raise RuntimeError("\n".join(failures))
    return wall, peak_rss, stdout, started_at


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_commands(cache: Path, scratch: Path, round_number: int) -> dict[str, list[tuple[list[str], dict]]]:
    """Each stack's processes (one, or two for the two-process data-parallel run)."""
    base = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    script = str(ROOT / "benchmarks" / "tutorial_stack.py")
    tensorflow_python = ROOT / ".venv-tensorflow" / "bin" / "python"
    digitlab = str(ROOT / ".venv" / "bin" / "digitlab")
    port = free_port()
    return {
        "tutorial": [([str(tensorflow_python), script, str(cache), str(scratch / f"tutorial-{round_number}")],
                      {**base, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"})],
        "keras-jax": [([sys.executable, script, str(cache), str(scratch / f"keras-jax-{round_number}")],
                       {**base, "KERAS_BACKEND": "jax"})],
        "digitlab": [([digitlab, "train", "--quiet", "--run-dir", str(scratch / f"digitlab-{round_number}")], base)],
        # The same run over 2 CPU devices in one process (XLA splits the machine's cores between them).
        "digitlab-2dev": [([digitlab, "train", "--quiet", "--distribute", "data-parallel", "--run-dir",
                            str(scratch / f"digitlab-2dev-{round_number}")],
                           {**base, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})],
        # The same run as 2 processes of one CPU device each, joined by Keras's distribution API
        # (Gloo on 127.0.0.1): what distributing costs on one 2-core machine.
        "digitlab-2proc": [([digitlab, "train", "--quiet", "--distribute", "data-parallel",
                             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
                             str(process_id), "--run-dir", str(scratch / f"digitlab-2proc-{round_number}")], base)
                           for process_id in (0, 1)],
    }


def figures(name: str, wall: float, rss: float, stdout: str, started_at: float, scratch: Path,
            round_number: int) -> dict:
    if name.startswith("digitlab"):
        run_dir = scratch / f"{name}-{round_number}"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        # metrics.json is written last, after model.keras: its time is when the run was saved.
        reported = {**metrics, "devices": config.get("devices"),
                    "saved_at": (run_dir / "metrics.json").stat().st_mtime_ns / 1e9}
    else:
        reported = json.loads(stdout.strip().splitlines()[-1])
    epochs = reported["epoch_seconds"]
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    # End to end as the issue defines it: process start to model and metrics saved (what comes after,
    # the interpreter tearing down, is in until_exit_seconds).
    return {"end_to_end_seconds": reported["saved_at"] - started_at, "until_exit_seconds": wall,
            "fit_seconds": reported["fit_seconds"], "steady_epoch_seconds": steady,
            "first_epoch_seconds": epochs[0], "compile_seconds": reported.get("compile_seconds"),
            "images_per_second": TRAINING_IMAGES / steady, "gflops": FLOP_PER_EPOCH / steady / 1e9,
            "peak_rss_mb": rss, "test_accuracy": reported["test_accuracy"], "devices": reported.get("devices")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--skip", action="append", default=[], choices=list(STACKS))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "train_speed.json")
    arguments = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from digitlab.data import datasets

    cache = datasets.fetch("mnist").directory
    peak = measure_matmul_peak()
    peak_gflops = max(peak["numpy_gflops"], peak["jax_gflops"])
    print(f"float32 matmul peak: NumPy {peak['numpy_gflops']:.0f} GFLOP/s, JAX {peak['jax_gflops']:.0f} GFLOP/s "
          f"on {peak['device']} ({os.cpu_count()} CPUs); shares below are of {peak_gflops:.0f}", flush=True)

    stacks = [name for name in STACKS if name not in arguments.skip]
    if "tutorial" in stacks and not (ROOT / ".venv-tensorflow" / "bin" / "python").exists():
        print("note: .venv-tensorflow is missing, so the tutorial's stack is skipped "
              "(bash scripts/setup tensorflow .venv-tensorflow)", flush=True)
        stacks.remove("tutorial")
    results: dict[str, list[dict]] = {name: [] for name in stacks}
    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as scratch_name:
        scratch = Path(scratch_name)
        for round_number in range(arguments.repeats):
            commands = stack_commands(cache, scratch, round_number)
            for name in stacks:
                wall, rss, stdout, started_at = run_with_rss(commands[name])
                results[name].append(figures(name, wall, rss, stdout, started_at, scratch, round_number))
                row = results[name][-1]
                print(f"round {round_number + 1} {name:10} saved after {row['end_to_end_seconds']:.2f} s, "
                      f"exited after {row['until_exit_seconds']:.2f} s, fit {row['fit_seconds']:.1f} s, "
                      f"epoch {row['steady_epoch_seconds']:.2f} s, test accuracy {row['test_accuracy']:.2%}", flush=True)

    summary = {name: {key: statistics.median(row[key] for row in rows) if isinstance(rows[0][key], (int, float))
                      else rows[0][key] for key in rows[0] if rows[0][key] is not None}
               for name, rows in results.items()}
    for row in summary.values():
        row["share_of_peak"] = row["gflops"] / peak_gflops

    lines = ["| stack | end to end (s) | until exit (s) | fit (s) | steady epoch (s) | images/s | GFLOP/s "
             "| share of peak | peak RSS (MB) | test accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        lines.append(f"| {STACKS[name]} | {row['end_to_end_seconds']:.2f} | {row['until_exit_seconds']:.2f} | "
                     f"{row['fit_seconds']:.1f} | "
                     f"{row['steady_epoch_seconds']:.2f} | {row['images_per_second']:,.0f} | {row['gflops']:.0f} | "
                     f"{row['share_of_peak']:.0%} | {row['peak_rss_mb']:,.0f} | {row['test_accuracy']:.2%} |")
    ratios = {}
    if "digitlab" in summary:
        for other in ("tutorial", "keras-jax", "digitlab-2dev", "digitlab-2proc"):
            if other in summary:
                for figure in ("end_to_end", "until_exit", "fit"):
                    ratios[f"{figure}_vs_{other}"] = (summary[other][f"{figure}_seconds"]
                                                      / summary["digitlab"][f"{figure}_seconds"])
    print()
    print("\n".join(lines))
    print()
    for key, value in ratios.items():
        print(f"digitlab {key.replace('_', ' ')}: {value:.2f}x faster")
    device = summary.get("digitlab", {}).get("devices")
    print(f"medians of {arguments.repeats} alternating rounds; digitlab ran on {device}; "
          f"machine: {platform.machine()}, {os.cpu_count()} CPUs")

    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({"peak": peak, "peak_gflops": peak_gflops, "rounds": results,
                                          "median": summary, "ratios": ratios, "repeats": arguments.repeats,
                                          "cpus": os.cpu_count(), "machine": platform.machine()}, indent=2))
    print(f"wrote {arguments.json}")


if __name__ == "__main__":
    main()
