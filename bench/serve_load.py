"""Load on a real `kplab serve`: N concurrent clients post the 40 photos for a fixed time.

Starts `kplab serve MODEL` on a free loopback port (nothing else is ever contacted), warms it up with
one pass over the photos, then runs N client threads, each with its own keep-alive connection,
posting the photos round robin (raw bodies) until the time is up. Prints photos/s, latency
percentiles, errors, the server's mean batch, the server's CPU time per photo (all its threads; on
a shared machine a steadier measure of its cost than wall time) and its resident memory before and
after the timed run.
`--compare` runs once without cross-request batching (--max-batch 1) and once with it.

Usage: python bench/serve_load.py [MODEL] [--clients 8] [--seconds 60] [--compare] [--max-batch 8]
       [--max-wait-ms 5] [--backend onnx] [--starts S] [--passes P] [--detect-step F] [--photos DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KPLAB = Path(sys.executable).with_name("kplab")
HOST = "127.0.0.1"  # loopback only
MAX_CLIENTS, MAX_SECONDS = 64, 600  # the load stays bounded


def default_photos() -> Path:
    """../shared/data/faces/photos from the repository (or from a worktree one level deeper)."""
    candidates = [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0]) / "faces" / "photos"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (all its threads) has used, in seconds."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def start_server(model: str, backend: str, max_batch: int, max_wait_ms: float, framing: list[str]
                 ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([str(KPLAB), "serve", model, "--backend", backend, "--port", str(port),
                                "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), *framing],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kplab serve exited: {process.stderr.read().decode()}")
        try:
            get_json(port, "/healthz")
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("kplab serve did not start within 120 s")


def client(port: int, photos: list[bytes], start: int, stop_at: float, latencies: list, errors: list) -> None:
    """Posts photos[start], photos[start + 1], ... until stop_at; one keep-alive connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    i = start
    while time.monotonic() < stop_at:
        body = photos[i % len(photos)]
        sent = time.perf_counter()
        try:
            conn.request("POST", "/v1/keypoints", body=body, headers={"Content-Type": "application/octet-stream"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200 or b'"faces"' not in answer:
                errors.append(f"{response.status}: {answer[:200]!r}")
            else:
                latencies.append(time.perf_counter() - sent)
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
        i += 1
    conn.close()


def run(model: str, backend: str, photos: list[bytes], clients: int, seconds: float, max_batch: int,
        max_wait_ms: float, framing: list[str]) -> dict:
    process, port = start_server(model, backend, max_batch, max_wait_ms, framing)
    try:
        for body in photos:  # one pass over the photos before timing
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            conn.request("POST", "/v1/keypoints", body=body)
            assert conn.getresponse().status == 200
            conn.close()
        before_stats = get_json(port, "/healthz")["batches"]
        rss_before = rss_mb(process.pid)
        cpu_before = cpu_seconds(process.pid)
        latencies: list[float] = []
        errors: list[str] = []
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(port, photos, k * len(photos) // clients, stop_at,
                                                          latencies, errors)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        rss_after = rss_mb(process.pid)
        cpu = cpu_seconds(process.pid) - cpu_before
        health = get_json(port, "/healthz")
        stats = health["batches"]
        conn = http.client.HTTPConnection(HOST, port, timeout=30)  # still answering after the load?
        conn.request("POST", "/v1/keypoints", body=photos[0])
        answers_after = health["status"] == "ok" and conn.getresponse().status == 200
        conn.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    lat = np.array(latencies) * 1000
    jobs, batches = stats["jobs"] - before_stats["jobs"], stats["batches"] - before_stats["batches"]
    return {"max_batch": max_batch, "clients": clients, "seconds": round(wall, 1), "photos": len(latencies),
            "photos_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None, "errors": len(errors),
            "first_errors": errors[:3], "mean_batch": jobs / batches if batches else 0.0,
            "rss_before_mb": rss_before, "rss_after_mb": rss_after,
            "server_cpu_ms_per_photo": 1000 * cpu / len(latencies) if latencies else None,
            "answers_after": answers_after}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--starts", type=int, default=None, help="the server's --starts (default: its own, 9)")
    ap.add_argument("--passes", type=int, default=None, help="the server's --passes (default: its own, 3)")
    ap.add_argument("--detect-step", type=float, default=None, help="the server's --detect-step (default: its own, 1.1)")
    ap.add_argument("--compare", action="store_true", help="run with --max-batch 1, then with --max-batch N")
    ap.add_argument("--photos", default=str(default_photos()), help="folder of .jpg photos (default: the shared 40)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines too")
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        raise SystemExit(f"--clients must be 1..{MAX_CLIENTS} and --seconds at most {MAX_SECONDS}")
    photos = [p.read_bytes() for p in sorted(Path(args.photos).glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"{args.photos}: no .jpg photos")
    settings = [1, args.max_batch] if args.compare else [args.max_batch]
    framing = [*(["--starts", str(args.starts)] if args.starts else []),
               *(["--passes", str(args.passes)] if args.passes else []),
               *(["--detect-step", str(args.detect_step)] if args.detect_step else [])]
    rows = [run(args.model, args.backend, photos, args.clients, args.seconds, b, args.max_wait_ms, framing)
            for b in settings]
    print(f"kplab serve {args.model} ({args.backend}{', ' + ' '.join(framing) if framing else ''}), "
          f"{len(photos)} photos posted round robin by "
          f"{args.clients} clients for {args.seconds:g} s each run, loopback; max wait {args.max_wait_ms:g} ms")
    print(f"{'max batch':>9}  {'photos/s':>8}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'errors':>6}  "
          f"{'mean batch':>10}  {'CPU ms/photo':>12}  {'RSS before -> after (MB)':>24}")
    for r in rows:
        print(f"{r['max_batch']:>9}  {r['photos_per_s']:>8.1f}  {r['p50_ms']:>7.1f}  {r['p95_ms']:>7.1f}  "
              f"{r['p99_ms']:>7.1f}  {r['errors']:>6}  {r['mean_batch']:>10.2f}  {r['server_cpu_ms_per_photo']:>12.1f}  "
              f"{r['rss_before_mb']:>11.1f} -> {r['rss_after_mb']:.1f} ({r['rss_after_mb'] - r['rss_before_mb']:+.1f})")
        if not r["answers_after"]:
            print("           the server did not answer a request after the run")
        for e in r["first_errors"]:
            print(f"           error: {e}")
    if args.json:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
