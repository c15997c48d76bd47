"""Bad input against a real `kplab serve`: every refusal has its status and says what was wrong, the
server never answers 500, never dies, and slow or vanished clients do not hold the model."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest



def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture(scope="module")
def good_png(synthetic_face) -> bytes:
    return png(synthetic_face)  # a synthetic face the detector finds


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# (name, request(good PNG, good JPEG) -> httpx.post keyword arguments, status, words the message must contain)
CASES = [
    ("empty body", lambda g, j: dict(content=b""), 422, "empty upload"),
    ("text", lambda g, j: dict(content=b"hello, this is not a picture"), 422, "not an image"),
    ("text as multipart file", lambda g, j: dict(files={"image": ("a.jpg", b"GIF87a? no.")}), 422, "not an image"),
    ("truncated PNG", lambda g, j: dict(content=g[: len(g) // 2]), 422, "truncated PNG"),
    ("truncated JPEG", lambda g, j: dict(content=j[: len(j) - 100]), 422, "truncated JPEG"),
    ("too small for a face", lambda g, j: dict(content=png(np.zeros((20, 30), np.uint8))), 422, "too small (30x20 px)"),
    ("decompression bomb", lambda g, j: dict(content=_bomb(8000, 8000)), 413, "8000x8000 = 64,000,000 pixels"),
    ("body over the byte cap", lambda g, j: dict(content=b"\x89PNG" + bytes(10_000_000)), 413,
     "upload too large: 10,000,004 bytes"),
    ("body far over the cap", lambda g, j: dict(content=bytes(45_000_000)), 413, "upload too large: 45,000,000 bytes"),
    ("multipart without a file", lambda g, j: dict(files={"note": (None, b"hi")}), 422, "no file part"),
    ("multipart without a boundary",
     lambda g, j: dict(content=b"--x\r\n", headers={"content-type": "multipart/form-data"}), 422,
     "malformed multipart body"),
    ("unknown option", lambda g, j: dict(content=g, params={"min-score": "1"}), 422, "unknown query parameter min-score"),
    ("bad boolean", lambda g, j: dict(content=g, params={"tta": "maybe"}), 422, "tta='maybe'"),
    ("bad number", lambda g, j: dict(content=g, params={"min_score": "inf"}), 422, "min_score='inf'"),
    ("too many starts", lambda g, j: dict(content=g, params={"starts": "10"}), 422, "starts='10': use a whole number from 1 to 9"),
    ("zero passes", lambda g, j: dict(content=g, params={"passes": "0"}), 422, "passes='0': use a whole number from 1 to 5"),
    ("passes not a number", lambda g, j: dict(content=g, params={"passes": "2.5"}), 422, "passes='2.5'"),
]


@pytest.fixture(scope="module")
def good_jpeg(synthetic_face) -> bytes:
    return cv2.imencode(".jpg", synthetic_face)[1].tobytes()


@pytest.mark.parametrize("name, make, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_its_status_and_message(server, good_png, good_jpeg, name, make, status, words):
    response = httpx.post(f"{server.url}/v1/keypoints", timeout=60, **make(good_png, good_jpeg))
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_after_every_bad_input_the_server_still_answers_and_stays_small(server, good_png, good_jpeg):
    memory = rss_mb(server.pid)
    for _, make, status, _ in CASES * 2:
        assert httpx.post(f"{server.url}/v1/keypoints", timeout=60, **make(good_png, good_jpeg)).status_code == status
    grown = rss_mb(server.pid) - memory
    print(f"\nserver RSS after every bad input twice: {grown:+.1f} MB")
    assert grown < 60  # a decoded bomb alone would be 64 M pixels x 3 bytes = 192 MB
    assert server.alive()
    response = httpx.post(f"{server.url}/v1/keypoints", content=good_png, timeout=60)
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert "Traceback" not in server.log() and " 500" not in server.log()


@pytest.mark.parametrize("method, path, status", [("GET", "/nowhere", 404), ("GET", "/v1/keypoints", 405),
                                                  ("GET", "/static/../app.py", 404),
                                                  ("GET", "/static/%2e%2e/service.py", 404),
                                                  ("POST", "/v1/model", 405)])
def test_wrong_routes_are_json_errors_and_no_path_escapes_the_static_folder(server, method, path, status):
    response = httpx.request(method, f"{server.url}{path}")
    assert response.status_code == status
    assert response.json()["error"]


def raw_request(url: str, body: bytes, declared: int | None = None) -> socket.socket:
    """An HTTP/1.1 POST /v1/keypoints written by hand: its headers and `body` (which may be less
    than the `declared` Content-Length). Returns the open socket."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"POST /v1/keypoints HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body) if declared is None else declared}\r\n\r\n")
    sock.sendall(head.encode() + body)
    return sock


def read_response(sock: socket.socket) -> str:
    """One HTTP response (headers and a Content-Length body) from a socket, as text."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\0"
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


@pytest.fixture(scope="module")
def strict_server(start_server):
    """A server with a short body deadline, one job per model call and a queue of 4."""
    return start_server("default", "--read-timeout", "1.5", "--max-batch", "1", "--max-queue", "4")


def wait_for_queue(server, at_least: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while server.health()["queue"] < at_least:
        assert time.monotonic() < deadline, f"the queue never held {at_least} requests"
        time.sleep(0.005)


def test_a_slow_client_does_not_hold_the_server_and_gets_408(strict_server, good_png):
    slow = raw_request(strict_server.url, good_png[:100], declared=len(good_png))  # then it stalls
    try:
        started = time.monotonic()
        response = httpx.post(f"{strict_server.url}/v1/keypoints", content=good_png, timeout=30)
        assert response.status_code == 200 and time.monotonic() - started < 1.4
        slow.settimeout(10)
        answer = read_response(slow)
    finally:
        slow.close()
    assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1.5 s" in answer


def test_a_vanished_client_never_reaches_the_model_and_the_server_keeps_answering(strict_server, synthetic_face,
                                                                                 good_png):
    # Requests slow enough to queue behind each other: the face enlarged 5x (detection searches many more
    # sizes), nine framings with flip TTA. Small ones were answered faster than the queue could be watched.
    big = png(cv2.resize(synthetic_face, None, fx=5, fy=5, interpolation=cv2.INTER_LINEAR))
    heavy = {"tta": "true", "passes": "5"}
    before = strict_server.health()["batches"]
    with ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(httpx.post, f"{strict_server.url}/v1/keypoints", content=big, params=heavy, timeout=60)
                for _ in range(4)]
        wait_for_queue(strict_server, 2)  # the model works on one, others wait
        gone = raw_request(strict_server.url, good_png)  # a complete request whose client leaves at once
        gone.close()
        statuses = [f.result().status_code for f in busy]
    after = strict_server.health()["batches"]
    assert statuses == [200] * 4
    assert after["jobs"] - before["jobs"] == 4  # the vanished one was skipped or never queued
    assert after["skipped"] - before["skipped"] <= 1
    assert httpx.post(f"{strict_server.url}/v1/keypoints", content=good_png, timeout=30).status_code == 200


def test_a_full_queue_answers_503_and_recovers(strict_server, good_png):
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: httpx.post(f"{strict_server.url}/v1/keypoints", content=good_png,
                                                       timeout=60), range(16)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 4, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert "4 requests are already waiting" in busy.json()["error"] and busy.headers["retry-after"] == "1"
    assert httpx.post(f"{strict_server.url}/v1/keypoints", content=good_png, timeout=30).status_code == 200
    assert strict_server.alive() and "Traceback" not in strict_server.log()
