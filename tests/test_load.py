"""A short load test: benchmarks/load_test.py (Locust) for 20 s against `digitlab serve --workers 2`.

Well-formed requests, bad inputs (a 5,001-digit integer, a 16-bit PNG bomb, a 6 MB upload, bytes that
are no image, a foreign Host) and slow clients (headers a byte at a time, a silent connection, a body
that stops) at once: every well-formed request is answered, every bad one refused as it should be,
every slow client cut off, and nothing in the server's log is a traceback. The 5-minute run is in
docs/reliability/server.md.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

LOAD_TEST = Path(__file__).parents[1] / "benchmarks" / "load_test.py"



# Locust is not imported here: importing it patches the process's sockets for gevent.
@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="drives the server with Locust (the test extra)")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures the server's memory from /proc")
def test_a_short_mixed_load_answers_every_well_formed_request(tmp_path):
    report = tmp_path / "load.json"
    # A 3 s header deadline, so that each slow client is cut off several times within the run.
    finished = subprocess.run([sys.executable, str(LOAD_TEST), "--duration", "20", "--users", "10",
                               "--header-timeout", "3", "--json", str(report)],
                              capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    figures = json.loads(report.read_text())
    assert figures["well_formed_requests"] >= 20, finished.stdout
    assert figures["well_formed_errors"] == 0, figures["error_examples"]
    assert figures["bad_requests"] >= 1 and figures["bad_not_refused_as_expected"] == 0, finished.stdout
    assert figures["slow_clients"] >= 1 and figures["slow_not_cut_off"] == 0, finished.stdout
    assert figures["server_tracebacks"] == 0, finished.stdout
