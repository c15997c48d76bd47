"""Downloads against a real HTTP server on 127.0.0.1 (no mocks): checksums, truncation, atomicity."""

import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from kplab.digits.data import read_mnist, write_idx
from kplab.digits.download import download, fetch_mnist
from kplab.errors import DataError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):
        self.hits.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        body = self.files.get(name)
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        # /short/ promises the whole file but sends half of it, then hangs up.
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path.startswith("/short/") else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {NAMES[0]: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              NAMES[1]: rng.integers(0, 10, 20, dtype=np.uint8),
              NAMES[2]: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              NAMES[3]: rng.integers(0, 10, 5, dtype=np.uint8)}
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for name, a in arrays.items():
        write_idx(src / name, a)
        files[name] = (src / name).read_bytes()
    handler = type("H", (Handler,), {"files": files, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, arrays, handler.hits
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_fetch_downloads_verifies_and_caches(server, tmp_path):
    url, files, arrays, hits = server
    checksums = {n: sha(b) for n, b in files.items()}
    cache = tmp_path / "cache"
    folder = fetch_mnist(url + "/mnist", cache, checksums)
    mnist = read_mnist(folder)
    np.testing.assert_array_equal(mnist.x_train, arrays[NAMES[0]])
    assert len(hits) == 4
    fetch_mnist(url + "/mnist", cache, checksums)  # everything cached and valid: no new requests
    assert len(hits) == 4
    (cache / NAMES[1]).write_bytes(b"damaged")  # a damaged cache entry is fetched again
    fetch_mnist(url + "/mnist", cache, checksums)
    assert len(hits) == 5
    assert gzip.decompress((cache / NAMES[1]).read_bytes())[8:] == arrays[NAMES[1]].tobytes()


def test_md5_checksums_are_accepted(server, tmp_path):
    url, files, _, _ = server
    md5 = "md5:" + hashlib.md5(files[NAMES[3]]).hexdigest()
    assert download(f"{url}/{NAMES[3]}", tmp_path / "c" / NAMES[3], md5).read_bytes() == files[NAMES[3]]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, files, _, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: checksum mismatch: expected sha256:0+, got sha256:"):
        download(f"{url}/{NAMES[1]}", cache / NAMES[1], "sha256:" + "0" * 64)
    assert list(cache.iterdir()) == []  # no final file and no temp file


def test_truncated_download_leaves_nothing(server, tmp_path):
    url, files, _, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="download (truncated|failed)"):
        download(f"{url}/short/{NAMES[0]}", cache / NAMES[0], sha(files[NAMES[0]]))
    assert list(cache.iterdir()) == []


def test_http_error_and_refused_connection(server, tmp_path):
    url, _, _, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{url}/missing.gz", tmp_path / "c" / "missing.gz", "sha256:" + "0" * 64)
    with pytest.raises(DataError, match="download failed"):
        download("http://127.0.0.1:9/x.gz", tmp_path / "c" / "x.gz", "sha256:" + "0" * 64)
    assert list((tmp_path / "c").iterdir()) == []


def test_bad_checksum_spec(tmp_path):
    with pytest.raises(DataError, match="must look like 'sha256:<hex>'"):
        download("http://127.0.0.1:9/x", tmp_path / "x", "crc32:abc")
