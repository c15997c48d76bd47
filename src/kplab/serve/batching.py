"""Requests from many clients share model calls.

Each request puts a job on one bounded queue and awaits its future. One consumer task takes the first
waiting job, gathers more until it has `max_batch` or `max_wait` has passed, and hands the batch to
one model thread. While that thread works, new jobs queue up and form the next batch, so under load
batches fill by themselves and throughput grows instead of every request paying its own batch-1 call.

What must not happen, and why it does not:
- a full queue does not grow memory: `submit` refuses (the service answers 503);
- a client that went away does not hold the model: its future is cancelled and the batch skips it;
- one job that makes the model call raise does not fail its neighbours: the batch is retried one job
  at a time, so only the culprit gets the error;
- nothing a batch raises stops the consumer: every exception ends up on a job's future.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

log = logging.getLogger("kplab.serve")


@dataclass
class Job:
    """One request's work: its `payload`, the `key` that says which jobs may share a call (the same
    options), and the future its request awaits."""

    payload: Any
    key: Hashable
    future: asyncio.Future = field(repr=False)


class QueueFull(Exception):
    """The queue holds max_queue jobs already."""


@dataclass
class BatchStats:
    jobs: int = 0          # jobs that reached the model
    skipped: int = 0       # jobs whose client had gone before their batch ran
    batches: int = 0       # model-thread calls (one per batch)
    largest: int = 0       # most jobs in one batch
    busy_s: float = 0.0    # time the model thread spent on batches

    def to_dict(self) -> dict:
        return {"jobs": self.jobs, "skipped": self.skipped, "batches": self.batches, "largest": self.largest,
                "mean_batch": round(self.jobs / self.batches, 2) if self.batches else 0.0,
                "busy_s": round(self.busy_s, 3)}


class Batcher:
    """run(payloads) -> one result per payload, called on the model thread with up to max_batch
    payloads that share a key; it may raise, and then each payload is retried alone."""

    def __init__(self, run: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 8,
                 max_wait_ms: float = 5.0, max_queue: int = 64):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait_ms / 1000, max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._arrived: asyncio.Event | None = None  # set while a batch waits for more jobs

    # -- lifecycle (inside the server's event loop) ------------------------------------------
    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kplab-model")
        self._task = asyncio.create_task(self._consume(), name="kplab-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor:
            self._executor.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue else 0

    # -- requests -----------------------------------------------------------------------------
    async def submit(self, payload: Any, key: Hashable = None) -> Any:
        """Queue one payload and wait for its result; QueueFull at once if the queue is full. If the
        awaiting task is cancelled (its client went away), the job is skipped when its batch forms."""
        if not self.alive:
            raise RuntimeError("the batcher is not running (start() not called, or stopped)")
        job = Job(payload, key, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting for the model") from None
        if self._arrived is not None:  # a batch is gathering: tell it
            self._arrived.set()
        try:
            return await job.future
        finally:
            job.future.cancel()  # a no-op when it has its result; marks it abandoned otherwise

    # -- the consumer ---------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            batch = await self._gather()
            try:
                await self._run_batch(batch)
            except Exception as e:  # noqa: BLE001 - a bug here must fail its jobs, not stop the consumer
                log.exception("batch failed outside the model call")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)

    async def _run_batch(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        live = [j for j in batch if not j.future.done()]
        self.stats.skipped += len(batch) - len(live)
        for group in _groups(live):
            started = time.perf_counter()
            outcomes = await loop.run_in_executor(self._executor, self._run_group, group)
            self.stats.busy_s += time.perf_counter() - started
            self.stats.batches += 1
            self.stats.jobs += len(group)
            self.stats.largest = max(self.stats.largest, len(group))
            for job, outcome in zip(group, outcomes):
                if job.future.done():  # the client left while its batch ran
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def _gather(self) -> list[Job]:
        """The first waiting job, then whatever arrives until max_batch or max_wait after it.

        The wait for more is an event that `submit` or a timer sets, never a cancelled queue read, so
        no cancellation can escape into the consumer."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived = asyncio.Event()
            timer = loop.call_later(remaining, self._arrived.set)
            await self._arrived.wait()
            timer.cancel()
            self._arrived = None
        return batch

    def _run_group(self, group: list[Job]) -> list[Any]:
        """On the model thread: one call for the group; if it raises, one call per job, so each job
        gets its own result or its own exception."""
        payloads = [j.payload for j in group]
        try:
            results = list(self.run(payloads))
            if len(results) != len(payloads):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(payloads)} inputs")
            return results
        except Exception as e:  # noqa: BLE001 - find out which job it was
            if len(group) == 1:
                return [e]
            return [_call_alone(self.run, p) for p in payloads]


def _call_alone(run, payload) -> Any:
    try:
        return run([payload])[0]
    except Exception as e:  # noqa: BLE001 - handed to the job's future
        return e


def _groups(jobs: list[Job]) -> list[list[Job]]:
    """Jobs split by key, first-come order kept within and between groups."""
    groups: dict[Hashable, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.key, []).append(job)
    return list(groups.values())
