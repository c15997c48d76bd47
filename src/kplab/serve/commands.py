"""`kplab serve`: option parsing and starting uvicorn."""

from __future__ import annotations

import ipaddress
import json
import os

import click

from kplab.serve.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

SETTINGS_ENV = "KPLAB_SERVE_SETTINGS"  # how `--workers N` hands the options to each worker process
# Open connections (each waiting, uploading or idle) that uvicorn accepts before answering 503.
CONNECTIONS_PER_QUEUE_SLOT = 4


@click.command(context_settings={"show_default": True})
@click.argument("model", default="default")
@click.option("--host", default="127.0.0.1", help="address to bind (loopback: only this machine can connect)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000)
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              help="model runtime (ONNX Runtime is 4-5x faster on a CPU)")
@click.option("--workers", type=click.IntRange(min=1), default=1,
              help="server processes, each with its own model and batcher")
@click.option("--max-batch", type=click.IntRange(min=1), default=8,
              help="most requests that share one model call (1: no cross-request batching)")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=5.0,
              help="how long a batch waits for more requests after its first")
@click.option("--max-queue", type=click.IntRange(min=1), default=64,
              help="requests waiting for the model before new ones get 503")
@click.option("--max-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, help="request body cap (413)")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS,
              help="image size cap, read from the header before decoding (413)")
@click.option("--read-timeout", type=click.FloatRange(min=0.1), default=30.0,
              help="seconds a client may take to send its body (408)")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the model")
@click.option("--starts", type=click.IntRange(1, 9), default=9,
              help="first-pass framings per face, as `kplab predict --starts` (1: fastest, fragile); a request's "
                   "`starts` overrides it")
@click.option("--passes", type=click.IntRange(1, 5), default=3,
              help="framing passes, as `kplab predict --passes`; a request's `passes` overrides it")
@click.option("--detect-step", type=click.FloatRange(1.01, 2.0), default=1.1,
              help="the face detector's size step (1.2: about half the detection time, faces between steps "
                   "found less surely)")
@click.option("--access-log", is_flag=True, help="log every request")
def serve(model, host, port, backend, workers, max_batch, max_wait_ms, max_queue, max_bytes, max_pixels,
          read_timeout, threads, starts, passes, detect_step, access_log):
    """HTTP API and browser page for MODEL: POST /v1/keypoints, GET /v1/model, GET /healthz, the page at /.

    MODEL is a model directory, an exported .onnx file or `default` (the shipped model).
    """
    import uvicorn

    from kplab.faces.inference.predict import resolve_model
    from kplab.progress import say

    settings = {"model": model, "backend": backend, "threads": threads, "max_batch": max_batch,
                "max_wait_ms": max_wait_ms, "max_queue": max_queue, "max_bytes": max_bytes,
                "max_pixels": max_pixels, "read_timeout_s": read_timeout, "starts": starts, "passes": passes,
                "detect_step": detect_step}
    resolve_model(model)  # a wrong MODEL is a clear error here, not one per worker
    if not _is_loopback(host):
        say(f"warning: serving on {host}: other machines can reach this server, and it has no authentication")
    server = dict(host=host, port=port, log_level="info" if access_log else "warning", access_log=access_log,
                  limit_concurrency=CONNECTIONS_PER_QUEUE_SLOT * max_queue, timeout_keep_alive=5)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    if workers == 1:
        app = app_from_settings(settings)  # loads the model now, so load errors show before binding
        say(f"kplab serve: http://{shown}:{port}/  (model {model}, {backend}, max batch {max_batch}; Ctrl-C stops)")
        uvicorn.run(app, **server)
        return
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    say(f"kplab serve: http://{shown}:{port}/  ({workers} workers, model {model}, {backend}; Ctrl-C stops)")
    uvicorn.run("kplab.serve.commands:app_from_environment", factory=True, workers=workers, **server)


def app_from_settings(settings: dict):
    import torch

    from kplab.serve.app import ServeSettings, create_app
    from kplab.serve.limits import Limits
    from kplab.serve.service import KeypointService

    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    service = KeypointService(settings["model"], settings["backend"], settings["threads"],
                              starts=settings["starts"], passes=settings["passes"],
                              detect_step=settings["detect_step"])
    return create_app(service, ServeSettings(
        max_batch=settings["max_batch"], max_wait_ms=settings["max_wait_ms"], max_queue=settings["max_queue"],
        read_timeout_s=settings["read_timeout_s"],
        limits=Limits(max_bytes=settings["max_bytes"], max_pixels=settings["max_pixels"])))


def app_from_environment():
    """uvicorn's factory in each `--workers` process: the settings the parent put in SETTINGS_ENV."""
    return app_from_settings(json.loads(os.environ[SETTINGS_ENV]))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
