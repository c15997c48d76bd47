"""The ASGI app: routes, request bodies, error answers and the page's static files.

Every refusal is a JSON `{"error": message}` with a 4xx status; the message says what was wrong. Work
happens in three places, so a slow or vanished client never holds the model:
- the event loop reads bodies (with a byte cap and a deadline) and answers;
- a small decode pool checks headers and decodes pixels, a bounded number at a time;
- the batcher's one model thread runs complete, decoded images only, and skips the images of clients
  that have gone.
No endpoint reads or writes a path that a request names: uploads live in memory, and the static
files come from the package folder through Starlette's StaticFiles, which refuses to leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kplab.errors import DataError
from kplab.serve.batching import Batcher, QueueFull
from kplab.serve.limits import Limits, UploadError, decode_upload, too_large
from kplab.serve.openapi import openapi_description
from kplab.faces.inference.predict import STARTS
from kplab.serve.service import MAX_PASSES, KeypointService, Options

log = logging.getLogger("kplab.serve")
STATIC = Path(__file__).parent / "static"
# A body over the cap is still read (and dropped) up to this many times the cap, so that ordinary
# clients, which send the whole body before they read, receive the 413 instead of a reset connection.
DRAIN_FACTOR = 4
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
OPTION_NAMES = ("tta", "min_score", "min_quality", "detect", "starts", "passes")
# The page is plain files from this server: nothing may be fetched from elsewhere.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: "
                                 b"mediastream:; connect-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    read_timeout_s: float = 30.0
    decode_threads: int = 2
    limits: Limits = Limits()


def create_app(service: KeypointService, settings: ServeSettings = ServeSettings()) -> Starlette:
    batcher = Batcher(service.predict_batch, settings.max_batch, settings.max_wait_ms, settings.max_queue)
    decoder: dict[str, ThreadPoolExecutor] = {}
    description = service.describe()
    started_at = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.warm_up()
        await batcher.start()
        decoder["pool"] = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="kplab-decode")
        try:
            yield
        finally:
            await batcher.stop()
            decoder["pool"].shutdown(wait=True)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok" if batcher.alive else "model thread stopped", "model": service.name,
                             "pid": os.getpid(), "uptime_s": round(time.time() - started_at, 1),
                             "queue": batcher.waiting, "forward_calls": service.predictor.forward_calls,
                             "batches": batcher.stats.to_dict()}, 200 if batcher.alive else 503)

    async def model(request: Request) -> Response:
        return JSONResponse({**description, "limits": {"max_bytes": settings.limits.max_bytes,
                                                       "max_pixels": settings.limits.max_pixels},
                             "batching": {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms,
                                          "max_queue": settings.max_queue}})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_description(settings.limits))

    async def keypoints(request: Request) -> Response:
        started = time.perf_counter()
        options = parse_options(request.query_params)
        try:
            async with asyncio.timeout(settings.read_timeout_s):
                body = await read_body(request, settings.limits)
        except TimeoutError:
            raise UploadError(408, f"the request body did not arrive within {settings.read_timeout_s:g} s") from None
        data = await image_bytes(request.headers, body)
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(decoder["pool"], decode_upload, data, settings.limits)
        try:
            service.check_size(image, options)
        except DataError as e:
            raise UploadError(422, str(e)) from None
        faces = await until_disconnected(request, batcher.submit((image, options), options))
        if faces is None:  # the client has gone; nobody reads this
            return Response(status_code=499)
        return JSONResponse({"model": service.name, "layout": service.layout.name,
                             "width": int(image.shape[1]), "height": int(image.shape[0]),
                             "faces": [face.to_dict() for face in faces],
                             "ms": round(1000 * (time.perf_counter() - started), 1)})

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):  # gone while sending its body: nobody to answer
            return Response(status_code=499)
        if isinstance(exc, UploadError):
            status, message = exc.status, str(exc)
        elif isinstance(exc, QueueFull):
            return JSONResponse({"error": f"busy: {exc}; try again shortly"}, 503, headers={"retry-after": "1"})
        elif isinstance(exc, HTTPException):
            status, message = exc.status_code, exc.detail
        else:  # a bug, not bad input: say so, keep serving
            log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
            status, message = 500, f"internal error ({type(exc).__name__}: {exc})"
        return JSONResponse({"error": message}, status)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/model", model, methods=["GET"]),
        Route("/v1/keypoints", keypoints, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={Exception: refused, HTTPException: refused, UploadError: refused,
                                        QueueFull: refused, ClientDisconnect: refused})
    app.add_middleware(_SecurityHeaders)
    return app


def parse_options(params) -> Options:
    """Query parameters -> Options; a 422 names any unknown parameter or bad value."""
    unknown = sorted(set(params.keys()) - set(OPTION_NAMES))
    if unknown:
        raise UploadError(422, f"unknown query parameter {', '.join(unknown)}; the options are "
                               f"{', '.join(OPTION_NAMES)}")
    values = {}
    for name in ("tta", "detect"):
        if name in params:
            text = params[name].strip().lower()
            if text not in TRUE | FALSE:
                raise UploadError(422, f"query parameter {name}={params[name]!r}: use true or false")
            values[name] = text in TRUE
    for name in ("min_score", "min_quality"):
        if name in params:
            try:
                values[name] = float(params[name])
            except ValueError:
                values[name] = math.nan
            if not math.isfinite(values[name]):
                raise UploadError(422, f"query parameter {name}={params[name]!r}: use a number")
    for name, top in (("starts", len(STARTS)), ("passes", MAX_PASSES)):
        if name in params:
            text = params[name].strip()
            if not (text.isdigit() and 1 <= int(text) <= top):
                raise UploadError(422, f"query parameter {name}={params[name]!r}: use a whole number from 1 to {top}")
            values[name] = int(text)
    return Options(**values)


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, or a 413 once it passes the byte cap (after draining a bounded excess)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise UploadError(400, f"bad Content-Length header {declared!r}")
        if int(declared) > DRAIN_FACTOR * limits.max_bytes:  # too much to drain: answer now, drop the line
            raise too_large(int(declared), limits)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limits.max_bytes:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * limits.max_bytes:
            break
    if size > limits.max_bytes:
        raise too_large(size, limits)
    return b"".join(chunks)


async def image_bytes(headers: Headers, body: bytes) -> bytes:
    """The image in a body: the first file of a multipart/form-data body, else the body itself (any
    other content type, so `curl --data-binary @photo.jpg` works as it is)."""
    if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body

    async def replay():
        yield body

    parser = MultiPartParser(headers, replay(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise UploadError(422, f"malformed multipart body: {e.message}") from None
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise UploadError(422, "the multipart body has no file part; send the image as a file field "
                                   "(e.g. curl -F image=@photo.jpg)")
        return await files[0].read()
    finally:
        await form.close()


async def until_disconnected(request: Request, work):
    """The result of `work`, or None (and `work` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def watch():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pure ASGI: no per-request overhead worth measuring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
