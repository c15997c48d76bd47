"""The cross-request batcher in-process, with plain functions as the model."""

import asyncio
import threading

import pytest

from kplab.serve.batching import Batcher, QueueFull


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_concurrent_requests_share_calls_and_each_gets_its_own_result():
    calls = []

    def square(xs):
        calls.append(list(xs))
        return [x * x for x in xs]

    async def main():
        batcher = Batcher(square, max_batch=4, max_wait_ms=50, max_queue=64)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.stop()
        return results, batcher.stats

    results, stats = run(main())
    assert results == [i * i for i in range(10)]
    assert sorted(x for call in calls for x in call) == list(range(10))
    assert max(len(c) for c in calls) == 4 and len(calls) == 3  # 4 + 4 + 2
    assert stats.batches == 3 and stats.jobs == 10 and stats.largest == 4


def test_max_batch_1_is_one_call_per_request():
    calls = []

    async def main():
        batcher = Batcher(lambda xs: calls.append(list(xs)) or list(xs), max_batch=1, max_wait_ms=50)
        await batcher.start()
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.stop()

    run(main())
    assert calls == [[0], [1], [2], [3], [4]]


def test_jobs_with_different_keys_never_share_a_call():
    calls = []

    async def main():
        batcher = Batcher(lambda xs: calls.append(list(xs)) or list(xs), max_batch=8, max_wait_ms=50)
        await batcher.start()
        await asyncio.gather(*(batcher.submit(i, key=i % 2) for i in range(6)))
        await batcher.stop()

    run(main())
    assert sorted(map(sorted, calls)) == [[0, 2, 4], [1, 3, 5]]


def test_a_failing_job_fails_alone_and_the_batcher_keeps_serving():
    def picky(xs):
        if 13 in xs:
            raise ValueError("13 is unlucky")
        return [-x for x in xs]

    async def main():
        batcher = Batcher(picky, max_batch=8, max_wait_ms=50)
        await batcher.start()
        first = await asyncio.gather(*(batcher.submit(x) for x in (1, 13, 2)), return_exceptions=True)
        after = await batcher.submit(5)
        await batcher.stop()
        return first, after

    first, after = run(main())
    assert first[0] == -1 and first[2] == -2
    assert isinstance(first[1], ValueError) and "unlucky" in str(first[1])
    assert after == -5


def test_a_full_queue_refuses_at_once():
    release = threading.Event()

    def slow(xs):
        release.wait(10)
        return list(xs)

    async def main():
        batcher = Batcher(slow, max_batch=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        running = asyncio.ensure_future(batcher.submit("running"))
        await asyncio.sleep(0.1)  # taken off the queue, blocked in the model thread
        waiting = [asyncio.ensure_future(batcher.submit(f"w{i}")) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await batcher.submit("one too many")
        release.set()
        results = await asyncio.gather(running, *waiting)
        await batcher.stop()
        return results

    assert run(main()) == ["running", "w0", "w1"]


def test_a_cancelled_request_is_skipped_and_never_reaches_the_model():
    release = threading.Event()
    seen = []

    def model(xs):
        seen.extend(xs)
        release.wait(10)
        return list(xs)

    async def main():
        batcher = Batcher(model, max_batch=1, max_wait_ms=0)
        await batcher.start()
        busy = asyncio.ensure_future(batcher.submit("busy"))
        await asyncio.sleep(0.1)
        gone = asyncio.ensure_future(batcher.submit("gone"))  # its client will vanish while it waits
        kept = asyncio.ensure_future(batcher.submit("kept"))
        await asyncio.sleep(0.05)
        gone.cancel()
        release.set()
        results = await asyncio.gather(busy, kept)
        await batcher.stop()
        return results, batcher.stats

    results, stats = run(main())
    assert results == ["busy", "kept"]
    assert seen == ["busy", "kept"] and stats.skipped == 1
