"""Download the MNIST idx files into a cache, verify checksums, never leave a half-written file.

Each file streams into a temp file beside its final name while being hashed; only a complete file
whose checksum matches is renamed into place (rename is atomic on one filesystem). Anything else
-- HTTP error, short read, wrong checksum, Ctrl-C -- deletes the temp file and raises DataError.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from kplab.errors import DataError
from kplab.progress import bar

# The published MNIST archives (these MD5s are the ones every mirror and torchvision check).
MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}
CHUNK = 1 << 16


def default_cache() -> Path:
    return Path(os.environ.get("KPLAB_CACHE", Path.home() / ".cache" / "kplab")) / "mnist"


def _hasher(checksum: str):
    algorithm, sep, digest = checksum.partition(":")
    if not sep or algorithm not in ("md5", "sha256") or not digest:
        raise DataError(f"checksum {checksum!r} must look like 'sha256:<hex>' or 'md5:<hex>'")
    return hashlib.new(algorithm), digest.lower()


def file_matches(path: Path, checksum: str) -> bool:
    digest, expected = _hasher(checksum)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest() == expected


def download(url: str, dest: str | Path, checksum: str, *, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` (atomically), checking `checksum` ('sha256:...' or 'md5:...')."""
    dest = Path(dest)
    digest, expected = _hasher(checksum)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    declared = response.headers.get("Content-Length")
                    total = int(declared) if declared and declared.isdigit() else None
                    received = 0
                    with bar(desc=f"download {dest.name}", total=total) as progress:
                        for block in iter(lambda: response.read(CHUNK), b""):
                            out.write(block)
                            digest.update(block)
                            received += len(block)
                            progress.update(len(block))
            except urllib.error.HTTPError as e:
                raise DataError(f"{url}: HTTP {e.code} {e.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # refused, timeout, cut off
                raise DataError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
            if total is not None and received != total:
                raise DataError(f"{url}: download truncated: got {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise DataError(f"{url}: checksum mismatch: expected {checksum}, got "
                            f"{checksum.partition(':')[0]}:{digest.hexdigest()}; nothing was saved")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should be readable like other outputs
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def fetch_mnist(base_url: str, cache: str | Path | None = None,
                checksums: dict[str, str] = MNIST_CHECKSUMS) -> Path:
    """The folder holding the four idx files from `base_url`, downloading only what is not cached and valid."""
    cache = Path(cache) if cache is not None else default_cache()
    base = base_url if base_url.endswith("/") else base_url + "/"
    for name, checksum in checksums.items():
        target = cache / name
        if target.is_file() and file_matches(target, checksum):
            continue
        download(base + name, target, checksum)
    return cache
