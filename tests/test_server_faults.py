"""Fault injection against a real `digitlab serve --workers 2` on 127.0.0.1 (web/connections.py,
web/server.py, web/classify.py): what one client does must not hurt the others.

The server runs as a subprocess with the bundled reader and an open-file limit of 300, as a small
machine or container has; short header and idle deadlines keep the floods brief. While sockets that
send nothing, or headers a byte at a time, flood it, a real client measures that every one of its
requests is still answered. Then the hostile bodies: an integer of 5,001 digits among good requests,
a 16-bit PNG bomb, an upload over the limit from Python's urllib, headers without end; last, a worker
killed as the out-of-memory killer would, which must be replaced while the server stays up.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import httpx
import numpy as np
import pytest
from PIL import Image

from digitlab.data.synthetic import digit_picture

OPEN_FILE_LIMIT = 300  # the server's (each worker's) open-file limit
HEADER_TIMEOUT = 2.0  # seconds: the server's --header-timeout (10 by default)
IDLE_TIMEOUT = 1.0  # seconds: the server's --idle-timeout (5 by default)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # the default --max-upload-mb 5

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and sets rlimits (Linux)")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


DIGIT = png(digit_picture(7))


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILE_LIMIT, OPEN_FILE_LIMIT))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`digitlab serve --workers 2` (the bundled reader) as a subprocess: (address, process, log file path)."""
    folder = tmp_path_factory.mktemp("serve")  # no runs/ here: the bundled reader is served
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--port", "0", "--workers", "2",
                                    "--header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT)],
                                   cwd=folder, stdout=subprocess.PIPE, stderr=log, text=True,
                                   preexec_fn=limit_open_files)
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, (line, log_path.read_text())
        address = found.group()
        wait_for_workers(address, 2, timeout=120)
        yield address, process, log_path
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_processes(address: str, tries: int = 40) -> set[int]:
    """The worker process ids answering /api/health (new connections spread over the workers)."""
    seen = set()
    for _ in range(tries):
        try:
            seen.add(httpx.get(f"{address}/api/health", timeout=5).json()["process"])
        except httpx.TransportError:
            time.sleep(0.1)
    return seen


def wait_for_workers(address: str, count: int, timeout: float, exclude: set[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = worker_processes(address, tries=10) - exclude
        if len(seen) >= count:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers answered within {timeout} s")


def host_port(address: str) -> tuple[str, int]:
    url = httpx.URL(address)
    return url.host, url.port


class Prober(threading.Thread):
    """A real client: one fresh connection per request, as many browsers' requests arrive; counts
    the answers that are not 200 (or never come) while it runs."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address, self.stop, self.answered, self.failures = address, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = httpx.post(f"{self.address}/api/predict", content=DIGIT, timeout=10,
                                      headers={"Connection": "close"})
                if response.status_code == 200 and "probabilities" in response.json():
                    self.answered += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:100]}")
            except httpx.HTTPError as err:
                self.failures.append(repr(err))
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.join(30)


def open_sockets(address: str, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(host_port(address), timeout=5)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP response from a raw socket: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed before a whole response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or answered and closed) this socket, without waiting."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


# --- floods of idle and slow connections ---------------------------------------------------------


def test_an_idle_connection_flood_over_the_open_file_limit_starves_nobody(server):
    """1,000 sockets that never send a byte (more than both workers' open-file limits together), kept
    coming for 6 s, while a real client sends requests: all of them are answered."""
    address, _process, _log = server
    flood: list[socket.socket] = []
    try:
        with Prober(address) as prober:
            deadline = time.monotonic() + 6
            opened = 0
            while time.monotonic() < deadline:
                flood += open_sockets(address, 50)
                opened += 50
                flood = [sock for sock in flood if not closed_by_server(sock) or sock.close()]
                time.sleep(0.1)
        print(f"idle flood: {opened} sockets opened, {prober.answered} real requests answered, "
              f"{len(prober.failures)} failed")
        assert prober.answered >= 3 and not prober.failures, (prober.answered, prober.failures[:5])
        # Nothing holds them: the server closed the idle sockets (at the cap, or after the header deadline).
        time.sleep(HEADER_TIMEOUT + 1)
        still_open = [sock for sock in flood if not closed_by_server(sock)]
        assert not still_open, f"{len(still_open)} of {len(flood)} idle sockets still open"
    finally:
        for sock in flood:
            sock.close()


def test_a_slow_header_flood_is_cut_off_at_the_deadline_and_starves_nobody(server):
    """400 sockets sending headers a byte at a time: each gets 408 (or is closed) at the header deadline,
    and a real client meanwhile gets every answer."""
    address, _process, _log = server
    flood = open_sockets(address, 400, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        with Prober(address) as prober:
            started = time.monotonic()
            cut_off = set()
            while time.monotonic() - started < HEADER_TIMEOUT + 3 and len(cut_off) < len(flood):
                for number, sock in enumerate(flood):
                    if number in cut_off:
                        continue
                    try:
                        sock.send(b"a")
                    except OSError:
                        cut_off.add(number)
                        continue
                    if closed_by_server(sock):
                        cut_off.add(number)
                time.sleep(0.25)
            waited = time.monotonic() - started
        print(f"slow-header flood: {len(flood)} sockets, {len(cut_off)} cut off within {waited:.1f} s; "
              f"{prober.answered} real requests answered, {len(prober.failures)} failed")
        assert prober.answered >= 3 and not prober.failures, (prober.answered, prober.failures[:5])
        assert len(cut_off) == len(flood), f"{len(flood) - len(cut_off)} slow sockets still open after {waited:.1f} s"
    finally:
        for sock in flood:
            sock.close()


def test_a_slow_header_gets_408_at_the_deadline(server):
    address, _process, _log = server
    with socket.create_connection(host_port(address), timeout=HEADER_TIMEOUT + 5) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and the rest never
        status, body = read_answer(sock)
        waited = time.monotonic() - started
    assert status == 408 and json.loads(body)["code"] == "too_slow", body
    assert HEADER_TIMEOUT * 0.8 < waited < HEADER_TIMEOUT + 2


def test_a_keep_alive_connection_is_closed_idle_and_cut_off_when_its_next_request_stalls(server):
    """Idle after an answer: closed after the idle timeout. A next request begun and left hanging (one
    byte stops uvicorn's keep-alive timer): 408 at the header deadline, not a connection held for ever."""
    address, _process, _log = server
    with socket.create_connection(host_port(address), timeout=HEADER_TIMEOUT + 5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock)[0] == 200
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server
        assert time.monotonic() - started < IDLE_TIMEOUT + 1.5
    with socket.create_connection(host_port(address), timeout=HEADER_TIMEOUT + 5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock)[0] == 200
        started = time.monotonic()
        sock.sendall(b"G")
        assert read_answer(sock)[0] == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + 1.5


# --- headers without end -------------------------------------------------------------------------


def test_headers_over_64_kb_get_431_before_more_is_read(server):
    address, _process, _log = server
    with socket.create_connection(host_port(address), timeout=10) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent, answer = 0, b""
        piece = b"X-Filler: " + b"a" * 8180 + b"\r\n"  # 8 KB a header, without end
        while sent < 1024 * 1024 and not answer:
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
            sock.setblocking(False)
            try:
                answer = sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            time.sleep(0.01)
        sock.setblocking(True)
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "headers_too_large"
    assert sent <= 64 * 1024 + 3 * len(piece), f"answered only after {sent} bytes of headers"
    assert httpx.get(f"{address}/api/health").status_code == 200


# --- hostile bodies ------------------------------------------------------------------------------


def test_an_integer_of_5001_digits_fails_its_own_request_only(server):
    """Sent among good requests (so that they share batches): 422 for it, every good one answered."""
    address, _process, _log = server
    huge = b'{"pixels": [[' + b"9" * 5001 + b", 0" * 27 + b"]" + b", [" + b", ".join([b"0"] * 28) + b"]" * 27 + b"]}"
    good = json.dumps({"pixels": (np.asarray(digit_picture(7).convert("L").resize((28, 28)))).tolist()}).encode()
    answers: dict[str, list] = {"bad": [], "good": []}

    def send(kind: str, body: bytes) -> None:
        with httpx.Client(base_url=address, timeout=30) as client:
            for _ in range(15):
                answers[kind].append(client.post("/api/predict", content=body,
                                                 headers={"Content-Type": "application/json"}))

    threads = [threading.Thread(target=send, args=("bad" if number % 3 == 0 else "good", huge if number % 3 == 0
                                                   else good)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers["bad"]) == 60 and len(answers["good"]) == 120
    for response in answers["bad"]:
        assert response.status_code == 422 and response.json()["code"] == "bad_pixels", response.text
        assert "digits" in response.json()["error"]
    assert all(response.status_code == 200 for response in answers["good"]), \
        [response.text for response in answers["good"] if response.status_code != 200][:3]


def peak_memory_megabytes(process_id: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    with open(f"/proc/{process_id}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {process_id}")


def test_a_16_bit_png_bomb_is_refused_from_its_header(server):
    """A ~100 KB 16-bit PNG of 7000x7000 pixels would take ~470 MB to prepare: refused before decoding."""
    address, _process, _log = server
    bomb = png(Image.fromarray(np.zeros((7000, 7000), dtype=np.uint16)))
    assert len(bomb) < 1024 * 1024
    workers = worker_processes(address, tries=20)
    peaks = {worker: peak_memory_megabytes(worker) for worker in workers}
    with httpx.Client(base_url=address, timeout=60) as client:
        for path in ("/api/predict", "/api/read", "/api/predict"):
            for send in ({"content": bomb}, {"files": {"file": ("bomb.png", bomb, "image/png")}}):
                response = client.post(path, **send)
                assert response.status_code == 422 and response.json()["code"] == "bad_image", response.text
                assert "memory" in response.json()["error"] and "7000x7000" in response.json()["error"]
    grown = {worker: peak_memory_megabytes(worker) - peaks[worker] for worker in workers}
    print(f"16-bit bomb ({len(bomb) / 1024:.0f} KB): 6 uploads refused; workers' peak memory grew by "
          f"{max(grown.values()):.0f} MB at most")
    assert max(grown.values()) < 150, f"peak memory grew by {grown} MB"


def test_an_oversized_upload_from_urllib_receives_the_413(server):
    """urllib sends the whole body before it reads the answer: it must get the 413, not a reset."""
    address, _process, _log = server
    for size in (MAX_UPLOAD_BYTES + 1, 8 * 1024 * 1024, 20 * 1024 * 1024):
        request = urllib.request.Request(f"{address}/api/predict", data=bytes(size), method="POST",
                                         headers={"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413, size
        assert json.loads(refused.value.read())["code"] == "too_large"
    assert httpx.get(f"{address}/api/health").status_code == 200


# --- a worker dies ---------------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_the_server_stays_up(server):
    address, process, log_path = server
    workers = wait_for_workers(address, 2, timeout=30)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer does
    with Prober(address) as prober:
        replaced = wait_for_workers(address, 1, timeout=60, exclude={victim} | (workers - {victim}))
        time.sleep(0.5)
    assert process.poll() is None, "the server stopped"
    assert replaced and victim not in replaced
    # Requests on connections the kernel had handed to the dying worker may fail; all the others are answered.
    print(f"killed worker: replaced by process {sorted(replaced)}; {prober.answered} requests answered meanwhile, "
          f"{len(prober.failures)} failed")
    assert prober.answered >= 5 and len(prober.failures) <= 2, prober.failures
    assert worker_processes(address) >= replaced
    log = log_path.read_text()
    assert re.search(rf"\(process {victim}\) was killed by SIGKILL.*started a new one", log), log
