"""Load test: Locust against `digitlab serve --workers 2` on 127.0.0.1, well-formed, bad and slow clients at once.

    python benchmarks/load_test.py                      # 5 minutes, 20 users (16 well-formed, 2 bad, 2 slow)
    python benchmarks/load_test.py --duration 20 --json report.json

Starts the server (the bundled reader unless --model), waits for its workers, measures the resident
memory of all its processes, runs Locust headless with benchmarks/locustfile.py, measures the memory
again and prints: the error rate of the well-formed requests, their p50/p99 latency, requests per
second, how the bad and slow requests were answered, and the server's memory before and after.
--json writes the same figures for tests/test_load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=300, help="seconds of load (default 300)")
    parser.add_argument("--users", type=int, default=20, help="Locust users: 8 well-formed to 1 bad to 1 slow")
    parser.add_argument("--workers", type=int, default=2, help="digitlab serve --workers")
    parser.add_argument("--model", help="digitlab serve --model (default: the bundled reader)")
    parser.add_argument("--header-timeout", type=float, default=10.0,
                        help="digitlab serve --header-timeout (default 10, the server's own): how long slow clients last")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="digitlab-load-") as folder:
        folder = Path(folder)
        command = [sys.executable, "-m", "digitlab", "serve", "--port", "0", "--workers", str(arguments.workers),
                   "--header-timeout", str(arguments.header_timeout)]
        if arguments.model:
            command += ["--model", str(Path(arguments.model).resolve())]
        server_log = folder / "server.log"
        with open(server_log, "w") as log:
            # The folder has no runs/: without --model the bundled reader is served.
            server = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            address = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline())
            if address is None:
                raise SystemExit(f"the server did not start:\n{server_log.read_text()}")
            address = address.group()
            _wait_for_workers(address, arguments.workers)
            _warm(address)
            memory_before = _server_memory(server.pid)
            figures = _run_locust(address, arguments, folder)
            memory_after = _server_memory(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        tracebacks = server_log.read_text().count("Traceback")
    figures.update(memory_before_mb=memory_before, memory_after_mb=memory_after, server_tracebacks=tracebacks,
                   machine=_machine(), load_average_after=round(os.getloadavg()[0], 1),
                   command=" ".join(["python", "benchmarks/load_test.py", *sys.argv[1:]]))
    _print(figures, arguments)
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2))


def _wait_for_workers(address: str, workers: int, timeout: float = 180) -> None:
    """Until `workers` different worker processes have answered /api/health."""
    seen, deadline = set(), time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {workers} workers answered within {timeout:.0f} s")
        try:
            with urllib.request.urlopen(f"{address}/api/health", timeout=5) as response:
                seen.add(json.load(response)["process"])
        except OSError:
            time.sleep(0.1)


def _warm(address: str) -> None:
    """A few requests per worker before measuring: first calls compile and fill caches. (The locustfile's
    own images are not imported: importing Locust patches this process's sockets for gevent.)"""
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("L", (40, 16), 255)
    ImageDraw.Draw(picture).text((4, 2), "42", fill=0)
    buffer = io.BytesIO()
    picture.resize((240, 96)).save(buffer, format="PNG")
    for _ in range(20):
        for path, body in (("/api/predict", buffer.getvalue()), ("/api/read", buffer.getvalue())):
            request = urllib.request.Request(f"{address}{path}", data=body, headers={"Content-Type": "image/png",
                                                                                      "Connection": "close"})
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()


def _processes(root: int) -> list[int]:
    """`root` and all its descendants (Linux: /proc/PID/task/PID/children)."""
    found, waiting = [], [root]
    while waiting:
        process = waiting.pop()
        found.append(process)
        try:
            children = Path(f"/proc/{process}/task/{process}/children").read_text().split()
        except OSError:
            continue
        waiting += [int(child) for child in children]
    return found


def _server_memory(root: int) -> float:
    """Resident memory of the server's processes together, in MB (VmRSS from /proc)."""
    total = 0
    for process in _processes(root):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(found.group(1)) if found else 0
    return round(total / 1024, 1)


def _run_locust(address: str, arguments, folder: Path) -> dict:
    report = folder / "outcomes.json"
    environment = {**os.environ, "LOAD_TEST_REPORT": str(report)}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", address,
               "--users", str(arguments.users), "--spawn-rate", str(arguments.users),
               "--run-time", f"{arguments.duration}s", "--stop-timeout", "0", "--only-summary", "--loglevel", "WARNING"]
    started = time.monotonic()
    locust = subprocess.run(command, env=environment, capture_output=True, text=True,
                            timeout=arguments.duration + 120)
    elapsed = time.monotonic() - started
    if not report.exists():
        raise SystemExit(f"Locust wrote no report (exit {locust.returncode}):\n{locust.stderr[-3000:]}")
    if os.environ.get("LOAD_TEST_VERBOSE"):
        print(locust.stdout[-5000:], locust.stderr[-5000:], file=sys.stderr)
    outcomes = json.loads(report.read_text())
    return _summarise(outcomes, arguments.duration, elapsed)


def _summarise(outcomes: list, duration: float, elapsed: float) -> dict:
    def group(prefix: str) -> list:
        return [outcome for outcome in outcomes if outcome[0].startswith(prefix)]

    well_formed, bad, slow = group("ok:"), group("bad:"), group("slow:")
    times = np.array([outcome[1] for outcome in well_formed]) if well_formed else np.zeros(1)
    errors = [f"{name}: {error}" for name, _time, error, _when in well_formed if error]
    # Rates over the time requests were answered (Locust's start-up is part of --run-time).
    ended = [outcome[3] for outcome in outcomes]
    answering = max(ended) - min(ended) if len(ended) > 1 else float(duration)
    by_name: dict[str, dict] = {}
    for name, _time, error, _when in outcomes:
        entry = by_name.setdefault(name, {"requests": 0, "failures": 0})
        entry["requests"] += 1
        entry["failures"] += error is not None
    return {
        "duration_s": duration,
        "well_formed_requests": len(well_formed),
        "well_formed_errors": len(errors),
        "well_formed_error_rate": len(errors) / max(1, len(well_formed)),
        "error_examples": errors[:5],
        "other_failure_examples": [f"{name}: {error}" for name, _time, error, _when in bad + slow if error][:5],
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p99_ms": round(float(np.percentile(times, 99)), 1),
        "answering_s": round(answering, 1),
        "well_formed_per_second": round(len(well_formed) / answering, 1),
        "requests_per_second": round(len(outcomes) / answering, 1),
        "bad_requests": len(bad),
        "bad_not_refused_as_expected": sum(outcome[2] is not None for outcome in bad),
        "slow_clients": len(slow),
        "slow_not_cut_off": sum(outcome[2] is not None for outcome in slow),
        "slow_cut_off_slowest_s": round(max((outcome[1] for outcome in slow if outcome[2] is None), default=0) / 1000, 1),
        "by_name": by_name,
        "locust_seconds": round(elapsed, 1),
    }


def _machine() -> str:
    model = "unknown CPU"
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpu, re.MULTILINE).group(1).strip()
        model += ", AVX-512" if " avx512f" in cpu else ""
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def _print(figures: dict, arguments) -> None:
    print(f"load test: {figures['duration_s']} s, {arguments.users} Locust users against digitlab serve --workers "
          f"{arguments.workers} ({arguments.model or 'the bundled reader'}); {figures['machine']}")
    print(f"well-formed requests: {figures['well_formed_requests']:,}, errors {figures['well_formed_errors']} "
          f"({figures['well_formed_error_rate']:.3%}); latency p50 {figures['p50_ms']:.0f} ms, "
          f"p99 {figures['p99_ms']:.0f} ms")
    for example in figures["error_examples"]:
        print(f"  error: {example}")
    print(f"requests/s: {figures['well_formed_per_second']} well-formed, {figures['requests_per_second']} in all "
          f"(over the {figures['answering_s']} s in which requests were answered)")
    print(f"bad requests: {figures['bad_requests']:,}, {figures['bad_not_refused_as_expected']} not refused as "
          f"expected; slow clients: {figures['slow_clients']}, {figures['slow_not_cut_off']} not cut off "
          f"(the slowest cut off after {figures['slow_cut_off_slowest_s']} s)")
    for example in figures["other_failure_examples"]:
        print(f"  failure: {example}")
    for name, entry in sorted(figures["by_name"].items()):
        print(f"  {name:40} {entry['requests']:>7,} requests, {entry['failures']} failed")
    print(f"server memory (RSS, all processes): {figures['memory_before_mb']:.0f} MB before, "
          f"{figures['memory_after_mb']:.0f} MB after; tracebacks in its log: {figures['server_tracebacks']}")
    print(f"the machine's load average (1 minute) at the end: {figures['load_average_after']}")


if __name__ == "__main__":
    main()
