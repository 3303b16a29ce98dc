"""The same model served from model.keras (Keras on JAX) and from model.onnx (ONNX Runtime), side by side.

    .venv/bin/python benchmarks/deploy_speed.py [--model RUN_DIR] [--keras-env .venv] [--onnx-env .venv-serve]
        [--requests 5000] [--concurrency 32] [--rounds 2] [--starts 3]

For each of the two, in turn (rounds alternate, so that a busy moment of the machine hits both):

- cold start: from starting `python -m digitlab serve` to its first answer to POST /api/predict
  (the median of --starts starts);
- throughput and latency: --requests MNIST test digits as PNG bodies from --concurrency keep-alive
  clients (benchmarks/serve_speed.py's client), after 500 untimed ones: requests/s and p99;
- memory: the server process's resident memory (VmRSS) after the load: what each worker costs;
- answers: the digit each server names for every request, compared with the other's;
- installed size: the size on disk of each environment folder (--keras-env, --onnx-env). Build
  clean ones to measure what each install costs: `bash scripts/setup train /tmp/train-env` and
  `bash scripts/setup serve /tmp/serve-env` (the onnx env must not hold Keras or JAX: it is checked).

RUN_DIR/model.onnx is exported first when it is missing (`digitlab export`, the onnx extra in this
environment). Without --model, the latest finished run under runs/.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_speed  # noqa: E402  (its client: requests, driving, percentiles)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder (default: the latest finished run under runs/)")
    parser.add_argument("--keras-env", type=Path, default=ROOT / ".venv", help="environment with Keras and JAX")
    parser.add_argument("--onnx-env", type=Path, default=ROOT / ".venv-serve", help="environment without them")
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per round and server")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per server, alternating")
    parser.add_argument("--starts", type=int, default=3, help="cold starts timed per server")
    arguments = parser.parse_args()

    from digitlab.data import datasets

    run_dir = arguments.model or serve_speed._existing_run()
    if run_dir is None:
        sys.exit("no finished run under runs/: train one first (bash scripts/quickstart), or pass --model RUN_DIR")
    onnx_file = run_dir / "model.onnx"
    if not onnx_file.is_file():
        subprocess.run([sys.executable, "-m", "digitlab", "export", str(run_dir)], check=True)
    check = subprocess.run([arguments.onnx_env / "bin" / "python", "-c",
                            "import importlib.util as u; print(u.find_spec('keras') or u.find_spec('jax'))"],
                           capture_output=True, text=True, check=True)
    if check.stdout.strip() != "None":
        sys.exit(f"{arguments.onnx_env} holds Keras or JAX; give --onnx-env an environment built with "
                 "`bash scripts/setup serve DIR`")
    servers = {"keras (JAX)": (arguments.keras_env, run_dir), "onnx (ONNX Runtime)": (arguments.onnx_env, onnx_file)}

    _, (test_images, test_labels) = datasets.load("mnist")
    bodies = [serve_speed._request_body(image, "png") for image in test_images]
    labels = [int(label) for label in test_labels]
    print(f"model {run_dir}; {arguments.requests:,} PNG requests per round from {arguments.concurrency} clients, "
          f"{arguments.rounds} rounds each, {serve_speed._cores()} cores", flush=True)

    figures = {name: {"starts": [], "rates": [], "p99": [], "rss": [], "answers": {}} for name in servers}
    for name, (env, model) in servers.items():
        for _ in range(arguments.starts):
            figures[name]["starts"].append(_cold_start(env, model, bodies[0]))
    for _ in range(arguments.rounds):
        for name, (env, model) in servers.items():
            rate, p99, rss, answers = _load(env, model, bodies, labels, arguments.requests, arguments.concurrency)
            figures[name]["rates"].append(rate)
            figures[name]["p99"].append(p99)
            figures[name]["rss"].append(rss)
            figures[name]["answers"] = answers

    print(f"{'server':<22}{'cold start':>12}{'requests/s':>12}{'p99 ms':>9}{'memory MB':>11}{'installed MB':>14}")
    for name, (env, _) in servers.items():
        row = figures[name]
        print(f"{name:<22}{statistics.median(row['starts']):>11.2f}s{statistics.median(row['rates']):>12,.0f}"
              f"{statistics.median(row['p99']):>9.1f}{max(row['rss']):>11.0f}{_size_mb(env):>14,.0f}")
    (keras_name, onnx_name) = servers
    first, second = figures[keras_name]["answers"], figures[onnx_name]["answers"]
    same = sum(first[index] == second.get(index) for index in first)
    print(f"same digit named by both servers on {same:,} of {len(first):,} requests; rates per round: "
          + "; ".join(f"{name} {', '.join(f'{rate:,.0f}' for rate in figures[name]['rates'])}" for name in servers))


def _start(env: Path, model: Path) -> tuple[subprocess.Popen, str, int]:
    server = subprocess.Popen([env / "bin" / "python", "-m", "digitlab", "serve", "--model", str(model), "--port",
                               "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    match = re.search(r"http://([\d.]+):(\d+)", server.stdout.readline())
    if not match:
        server.kill()
        raise SystemExit(f"the server on {model} did not start")
    return server, match.group(1), int(match.group(2))


def _cold_start(env: Path, model: Path, body: tuple[str, bytes]) -> float:
    """Seconds from starting the server process to its first answered /api/predict."""
    import urllib.request

    started = time.perf_counter()
    server, host, port = _start(env, model)
    try:
        while True:
            request = urllib.request.Request(f"http://{host}:{port}/api/predict", data=body[1],
                                             headers={"Content-Type": body[0]})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
    finally:
        server.terminate()
        server.wait(30)


def _load(env, model, bodies, labels, count, concurrency) -> tuple[float, float, float, dict[int, int]]:
    """(requests/s, p99 ms, resident MB after the load, {request index: digit named}) for one server."""
    server, host, port = _start(env, model)
    try:
        serve_speed._wait_until_up(host, port, 1)
        requests = [serve_speed._http_request(host, port, *bodies[index % len(bodies)]) for index in range(count)]
        expected = [labels[index % len(labels)] for index in range(count)]
        asyncio.run(serve_speed._drive(host, port, requests[:500], expected, concurrency, 0.0))
        started = time.perf_counter()
        results = asyncio.run(serve_speed._drive(host, port, requests, expected, concurrency, 0.0))
        wall = time.perf_counter() - started
        rss = _resident_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    latencies = sorted(latency for latency, *_ in results)
    answers = {index: named for index, (_, _, _, named) in enumerate(results)}
    return count / wall, serve_speed._percentile(latencies, 0.99) * 1000, rss, answers


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _size_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6


if __name__ == "__main__":
    main()
