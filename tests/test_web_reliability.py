"""The server's guards (web/guards.py) and offline docs, against a real uvicorn server on 127.0.0.1.

Bodies that are too large, too slow or never sent, clients that leave, Host headers of DNS rebinding,
/docs and /redoc without internet, the errors the OpenAPI description declares, and memory under
thousands of mixed requests. Raw sockets where httpx would not send what a broken client sends.
"""

import json
import logging
import os
import re
import resource
import socket
import time

import httpx
import pytest
from PIL import Image

from digitlab.data.synthetic import digit_picture
from digitlab.inference import loading
from digitlab.web import app as web_app
from digitlab.web import connections
from digitlab.web import server as web_server
from digitlab.web.connections import ConnectionLimits
from digitlab.web.guards import AllowedHosts
from test_web_api import assert_error, encode

SHORT_TIMEOUT = 0.5  # the body timeout of the `quick` server, seconds


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return loading.load_classifier(tiny_run)


@pytest.fixture(scope="module")
def address(classifier):
    with web_server.running(classifier) as address:
        yield address


@pytest.fixture(scope="module")
def quick(classifier):
    """A server whose body timeout is short, so that slow bodies are refused within the test."""
    with web_server.running(classifier, body_timeout_seconds=SHORT_TIMEOUT) as address:
        yield address


def connect(address: str) -> socket.socket:
    url = httpx.URL(address)
    sock = socket.create_connection((url.host, url.port), timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from the socket: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def request_head(address: str, content_length: int | None, host: str | None = None,
                 content_type: str = "image/png", chunked: bool = False) -> bytes:
    url = httpx.URL(address)
    lines = ["POST /api/predict HTTP/1.1", f"Host: {host if host is not None else f'{url.host}:{url.port}'}",
             f"Content-Type: {content_type}"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_json_error(status: int, headers: dict, body: bytes, expected_status: int, code: str) -> dict:
    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["code"] == code and answer["error"], answer
    return answer


# --- bodies too large, too slow, never sent --------------------------------------------------


def test_an_oversized_content_length_is_answered_413_before_any_body_arrives(address):
    with connect(address) as sock:
        started = time.perf_counter()
        sock.sendall(request_head(address, web_app.MAX_BODY_BYTES + 1))  # and no body at all
        answer = assert_json_error(*read_response(sock), 413, "too_large")
        assert time.perf_counter() - started < 2, "answered from the header, not after waiting for the body"
    assert "5 MB" in answer["error"]


def test_the_body_timeout_is_ten_seconds_by_default():
    assert web_app.BODY_TIMEOUT_SECONDS == 10


def test_a_body_that_never_arrives_gets_408_and_the_connection_closes(quick):
    with connect(quick) as sock:
        started = time.perf_counter()
        sock.sendall(request_head(quick, 1000) + b"\x89PNG")  # 4 of 1,000 bytes, then nothing
        status, headers, body = read_response(sock)
        waited = time.perf_counter() - started
        assert_json_error(status, headers, body, 408, "too_slow")
        assert "0.5 s" in json.loads(body)["error"]
        assert SHORT_TIMEOUT * 0.8 < waited < SHORT_TIMEOUT + 3
        assert headers.get("connection") == "close" and sock.recv(1024) == b""


def test_a_body_trickling_in_gets_408_at_the_deadline_not_after_the_last_byte(quick):
    """A byte every 0.1 s keeps a connection busy forever unless the whole body has a deadline."""
    with connect(quick) as sock:
        started = time.perf_counter()
        sock.sendall(request_head(quick, 100))
        sock.settimeout(0.1)
        for _ in range(40):  # 4 s of trickling, well past the deadline
            try:
                sock.sendall(b"x")
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if data:
                sock.settimeout(10)
                head, _, body = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), data
                break
        else:
            raise AssertionError("no answer while the body trickled in")
        assert time.perf_counter() - started < SHORT_TIMEOUT + 2


@pytest.mark.parametrize("kind", ["chunked", "multipart", "json"])
def test_slow_chunked_multipart_and_json_bodies_get_408(quick, kind):
    boundary = "digitlab-boundary"
    if kind == "chunked":
        head, first = request_head(quick, None, chunked=True), b"4\r\n\x89PNG\r\n"
    elif kind == "multipart":
        head = request_head(quick, 500, content_type=f"multipart/form-data; boundary={boundary}")
        first = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'.encode()
    else:
        head, first = request_head(quick, 500, content_type="application/json"), b'{"pixels": [[0, 0'
    with connect(quick) as sock:
        sock.sendall(head + first)
        assert_json_error(*read_response(sock), 408, "too_slow")


def test_a_quick_server_still_answers_ordinary_requests(quick, classifier):
    picture = digit_picture(5)
    response = httpx.post(f"{quick}/api/predict", content=encode(picture), timeout=30)
    expected = classifier.predict(picture)
    assert response.status_code == 200
    assert response.json()["digit"] == classifier.decide(expected.probabilities, expected.images)[0].digit


def test_a_client_that_leaves_is_one_line_in_the_log_not_a_traceback(address, caplog):
    caplog.set_level(logging.INFO)
    with connect(address) as sock:
        sock.sendall(request_head(address, 1000) + b"\x89PNG")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("left" in record.getMessage() for record in caplog.records):
        time.sleep(0.05)
    time.sleep(0.2)  # anything logged after the line
    left = [record for record in caplog.records if "left" in record.getMessage()]
    assert len(left) == 1 and left[0].name == "digitlab.web" and left[0].levelno == logging.WARNING, left
    assert "before its request body arrived" in left[0].getMessage()
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert not tracebacks, [record.getMessage() for record in tracebacks]
    assert httpx.get(f"{address}/api/health").status_code == 200


# --- connections: deadlines, header size, the cap per worker (web/connections.py) -------------


def test_connection_limits_default_to_10_s_for_headers_5_s_idle_and_64_kb():
    limits = ConnectionLimits()
    assert (limits.header_timeout_seconds, limits.idle_timeout_seconds, limits.max_header_bytes) == (10, 5, 64 * 1024)
    for bad in ({"header_timeout_seconds": 0}, {"idle_timeout_seconds": -1}, {"max_header_bytes": 10},
                {"max_connections": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ConnectionLimits(**bad)
    assert ConnectionLimits(max_connections=7).connections() == 7


def test_the_default_connection_cap_stays_below_the_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
        assert ConnectionLimits().connections() == 300 - connections.RESERVED_FILES
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 100_000), hard))
        assert ConnectionLimits().connections() == connections.DEFAULT_MAX_CONNECTIONS
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(classifier):
    with web_server.running(classifier, connection_limits=ConnectionLimits(max_connections=4)) as address:
        idle = [connect(address) for _ in range(4)]
        try:
            time.sleep(0.3)  # all four accepted
            for _ in range(3):  # real clients, one new connection each: answered
                assert httpx.get(f"{address}/api/health", headers={"Connection": "close"}).status_code == 200
            idle[0].settimeout(5)
            assert idle[0].recv(1) == b"", "the longest idle connection was closed for the new one"
        finally:
            for sock in idle:
                sock.close()


def test_a_413_from_the_content_length_reaches_a_client_that_sends_the_whole_body_first(address):
    """As urllib does: the body is sent in full, then the answer read (with Connection: close)."""
    for size in (web_app.MAX_BODY_BYTES + 1, 3 * web_app.MAX_BODY_BYTES):
        with connect(address) as sock:
            sock.sendall(request_head(address, size).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
                         + bytes(size))
            assert_json_error(*read_response(sock), 413, "too_large")


# --- the Host header (DNS rebinding) ---------------------------------------------------------


def test_a_host_the_server_was_not_started_for_gets_a_json_400(address):
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example"):
        for path in ("/", "/api/health", "/api/model", "/docs", "/openapi.json"):
            assert_error(httpx.get(f"{address}{path}", headers={"Host": host}), 400, "bad_host", "--allowed-host",
                         host)
    # Refused before the body is read: no 413 for a bad host, however large its body.
    assert_error(httpx.post(f"{address}/api/predict", headers={"Host": "evil.example"},
                            content=bytes(web_app.MAX_BODY_BYTES + 1)), 400, "bad_host")


def test_this_machines_names_are_answered(address):
    port = httpx.URL(address).port
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", "localhost.", "[::1]",
                 f"[::1]:{port}"):
        response = httpx.get(f"{address}/api/health", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


def test_a_request_without_a_host_header_is_refused(address):
    with connect(address) as sock:
        sock.sendall(b"GET /api/health HTTP/1.0\r\n\r\n")
        assert_json_error(*read_response(sock), 400, "bad_host")


def test_allowed_hosts_add_names(classifier):
    allowed = AllowedHosts.for_address("127.0.0.1", ["digits.example", "Other.Example."])
    with web_server.running(classifier, allowed_hosts=allowed) as address:
        for host in ("digits.example", "digits.example:80", "other.example", "localhost"):
            assert httpx.get(f"{address}/api/health", headers={"Host": host}).status_code == 200, host
        assert_error(httpx.get(f"{address}/api/health", headers={"Host": "evil.example"}), 400, "bad_host")


def test_which_hosts_a_server_answers_to():
    local = AllowedHosts.for_address("127.0.0.1")
    assert local.allows("localhost:8000") and local.allows("[::1]:8000") and not local.allows("192.168.1.5")
    assert not local.allows("") and not local.allows("[::1") and not local.allows(socket.gethostname() + ".evil")
    # Bound to one address: that address too.
    assert AllowedHosts.for_address("192.168.1.5").allows("192.168.1.5:8000")
    # Bound to every interface: reached by any of its addresses or its name, never by another name.
    for everywhere in (AllowedHosts.for_address("0.0.0.0"), AllowedHosts.for_address("::")):
        for host in ("192.168.1.5:8000", "10.0.0.7", "[fe80::1]:8000", socket.gethostname(), "localhost"):
            assert everywhere.allows(host), host
        for host in ("evil.example", "192.168.1.5.nip.io", "0.0.0.0.evil.example"):
            assert not everywhere.allows(host), host
    # '*': any.
    assert AllowedHosts.for_address("127.0.0.1", ["*"]).allows("evil.example")


def test_worker_options_travel_as_json(tiny_run):
    options = web_server.WorkerOptions(model=str(tiny_run), backend=None, cors_origins=("http://a.example",),
                                       host="0.0.0.0", allowed_hosts=("digits.example",))
    assert web_server.WorkerOptions.from_json(options.to_json()) == options
    assert web_server.WORKER_OPTIONS_VARIABLE == "DIGITLAB_SERVE_OPTIONS"
    assert web_server.WORKER_OPTIONS_VARIABLE not in os.environ  # set only by serve(workers=N) off Linux


# --- /docs and /redoc offline, the errors in the OpenAPI description -------------------------


@pytest.mark.parametrize("page, scripts", [("/docs", ["swagger-ui-bundle.js"]), ("/redoc", ["redoc.standalone.js"])])
def test_the_docs_pages_load_only_local_assets(address, page, scripts):
    response = httpx.get(f"{address}{page}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://|//[a-z]|fonts\.googleapis", html, re.IGNORECASE), html
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert "/openapi.json" in urls
    assert {url.rsplit("/", 1)[-1] for url in urls} >= set(scripts)
    for url in urls:
        assert url.startswith("/"), url
        asset = httpx.get(f"{address}{url}")
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], url
            assert b"function" in asset.content[:200_000]
        if url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css")


def test_openapi_declares_every_error_answer(address):
    schema = httpx.get(f"{address}/openapi.json").json()
    predict_responses = schema["paths"]["/api/predict"]["post"]["responses"]
    assert {"200", "400", "408", "413", "422"} <= set(predict_responses)
    codes = set()
    for status in ("400", "408", "413", "422"):
        content = predict_responses[status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorAnswer"}
        codes |= set(content["examples"])
    assert {"no_ink", "bad_image", "bad_pixels", "bad_json", "no_image", "bad_host", "too_slow", "too_large"} <= codes
    for path in ("/api/health", "/api/model"):
        assert "400" in schema["paths"][path]["get"]["responses"], path


# --- memory -----------------------------------------------------------------------------------


def resident_megabytes() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident memory from /proc")
def test_thousands_of_mixed_requests_do_not_grow_memory(address):
    picture = encode(digit_picture(8))
    requests = [
        {"method": "POST", "url": "/api/predict", "content": picture},
        {"method": "POST", "url": "/api/predict", "json": {"pixels": [[0] * 28] * 28}},
        {"method": "POST", "url": "/api/predict", "content": b"not an image"},
        {"method": "POST", "url": "/api/predict", "content": encode(Image.new("1", (12_000, 12_000)))},
        {"method": "POST", "url": "/api/predict", "files": {"file": ("a.png", picture, "image/png")}},
        {"method": "GET", "url": "/api/health", "headers": {"Host": "evil.example"}},
        {"method": "GET", "url": "/api/model"},
        {"method": "GET", "url": "/nothing"},
    ]

    def send(count: int) -> None:
        with httpx.Client(base_url=address, timeout=30) as client:
            for number in range(count):
                status = client.request(**requests[number % len(requests)]).status_code
                assert status < 500, status

    send(1000)  # warm: caches, arenas, compiled shapes
    before = resident_megabytes()
    send(4000)
    grown = resident_megabytes() - before
    assert grown < 10, f"resident memory grew by {grown:.1f} MB over 4,000 requests"
