"""How fast `digitlab serve` answers: 32 concurrent clients send the 10,000 MNIST test digits.

    .venv/bin/python benchmarks/serve_speed.py [--model RUN_DIR] [--requests 10000] [--concurrency 32]
                                               [--kind png|multipart|json] [--rate 0]

Starts `python -m digitlab serve --port 0` in a subprocess, sends every MNIST test digit once (cycled
if --requests is larger) as a PNG body (`--kind png`, what the drawing page sends), a multipart
upload (`multipart`) or JSON pixels (`json`), from `--concurrency` keep-alive connections, and
prints throughput, latency percentiles, errors, the accuracy of the answers, and the CPU time the
server and this client spent per request. Without --model the latest finished run under runs/ is
used, or the tutorial's network is trained first (about 10-20 s).

Closed loop by default: each client sends its next request as soon as the last is answered, so the
figures are the most the server does, and latency includes waiting behind the other 31 clients
(by Little's law, mean latency = clients / throughput). `--rate R` is an open loop instead: R
requests per second on a fixed schedule, latency counted from each request's scheduled time.

The client is a minimal asyncio HTTP/1.1 client (prebuilt requests, no parsing beyond the status
line and Content-Length): client and server share the machine's cores, so the client is kept cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
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
    parser.add_argument("--requests", type=int, default=10_000, help="timed requests")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (connections)")
    parser.add_argument("--kind", choices=("png", "multipart", "json"), default="png", help="request body")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this many requests/s (0: closed loop)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (digitlab serve --workers)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests first")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    arguments = parser.parse_args()

    from digitlab.data import datasets

    _, (test_images, test_labels) = datasets.load("mnist")
    model = arguments.model or _existing_run() or _train_tutorial(Path(tempfile.mkdtemp(prefix="digitlab-serve-")))
    bodies = [_request_body(image, arguments.kind) for image in test_images]
    labels = [int(label) for label in test_labels]

    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(model), "--port", "0",
                               "--workers", str(arguments.workers)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = server.stdout.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        if not match:
            raise SystemExit(f"the server did not start: {line!r}")
        host, port = match.group(1), int(match.group(2))
        _wait_until_up(host, port, arguments.workers)
        print(f"server {host}:{port} ({arguments.workers} process{'es' if arguments.workers > 1 else ''}), "
              f"model {model}, {arguments.kind} bodies of "
              f"{statistics.mean(len(body[1]) for body in bodies):.0f} bytes on average, "
              f"{arguments.concurrency} clients, {_cores()} cores", flush=True)
        requests = [_http_request(host, port, *bodies[index % len(bodies)]) for index in range(arguments.requests)]
        expected = [labels[index % len(labels)] for index in range(arguments.requests)]

        asyncio.run(_drive(host, port, requests[: arguments.warmup], expected, arguments.concurrency, 0.0))
        server_cpu, client_cpu, started = _cpu_seconds(server.pid), time.process_time(), time.perf_counter()
        results = asyncio.run(_drive(host, port, requests, expected, arguments.concurrency, arguments.rate))
        wall = time.perf_counter() - started
        server_cpu, client_cpu = _cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
    finally:
        server.terminate()
        server.wait(30)

    latencies = sorted(latency for latency, *_ in results)
    errors = sum(1 for _, ok, *_ in results if not ok)
    correct = sum(1 for _, ok, right, _ in results if ok and right)
    figures = {
        "kind": arguments.kind, "requests": len(results), "concurrency": arguments.concurrency,
        "workers": arguments.workers,
        "rate": arguments.rate or None, "cores": _cores(), "seconds": round(wall, 3),
        "requests_per_second": round(len(results) / wall, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(_percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2), "max_ms": round(latencies[-1] * 1000, 2),
        "errors": errors, "accuracy": round(correct / max(1, len(results) - errors), 4),
        "server_cpu_ms_per_request": round(server_cpu / len(results) * 1000, 3),
        "client_cpu_ms_per_request": round(client_cpu / len(results) * 1000, 3),
    }
    loop = f"open loop at {arguments.rate:g}/s" if arguments.rate else "closed loop"
    print(f"{figures['requests']:,} requests ({loop}) in {wall:.2f} s: "
          f"{figures['requests_per_second']:,.0f} requests/s")
    print(f"latency p50 {figures['p50_ms']:.1f} ms, p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
          f"max {figures['max_ms']:.1f} ms; errors {errors}; answers correct {figures['accuracy']:.2%}")
    print(f"CPU per request: server {figures['server_cpu_ms_per_request']:.3f} ms, this client "
          f"{figures['client_cpu_ms_per_request']:.3f} ms (client share of the CPU used: "
          f"{client_cpu / max(1e-9, client_cpu + server_cpu):.0%})")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n")


async def _drive(host, port, requests, expected, concurrency, rate):
    """Send every request from `concurrency` connections; (latency s, ok, correct, digit named or -1) per request."""
    results = [None] * len(requests)
    next_index = 0
    start = time.perf_counter()

    async def client():
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests):
                index = next_index
                next_index += 1
                if rate:
                    due = start + index / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    began = due  # latency from the scheduled time: waiting for a free client counts
                else:
                    began = time.perf_counter()
                writer.write(requests[index])
                status, body = await _read_response(reader)
                latency = time.perf_counter() - began
                digit = re.match(rb'\{"digit":(\d+)', body) if status == 200 else None
                named = int(digit.group(1)) if digit is not None else -1
                results[index] = (latency, digit is not None, named == expected[index], named)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


async def _read_response(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return status, body


def _request_body(image, kind: str) -> tuple[str, bytes]:
    """(content type, body) for one (28, 28) uint8 MNIST digit."""
    from PIL import Image

    if kind == "json":
        return "application/json", json.dumps({"pixels": image.tolist()}, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    if kind == "png":
        return "image/png", buffer.getvalue()
    boundary = "digitlab-benchmark-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def _http_request(host: str, port: int, content_type: str, body: bytes) -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _wait_until_up(host: str, port: int, workers: int, seconds: float = 120) -> None:
    """Until the server answers; with several workers, until each has had time to load the model."""
    import urllib.request

    deadline = time.monotonic() + seconds
    answered = 0
    while answered < 4 * workers:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=5) as response:
                answered += response.status == 200
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if workers > 1:
        time.sleep(5)  # workers start one by one; the first to answer may not be the last to load


def _percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children, e.g. uvicorn's workers (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += _cpu_seconds(int(child))
    return total


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _existing_run() -> Path | None:
    from digitlab import runs
    from digitlab.errors import RunFolderError

    try:
        return runs.latest_finished_run(ROOT / runs.DEFAULT_RUNS_ROOT)
    except RunFolderError:
        return None


def _train_tutorial(scratch: Path) -> Path:
    print("no finished run under runs/: training the tutorial's network first ...", flush=True)
    run_dir = scratch / "tutorial"
    subprocess.run([sys.executable, "-m", "digitlab", "train", "--run-dir", str(run_dir), "--quiet"], check=True)
    return run_dir


if __name__ == "__main__":
    main()
