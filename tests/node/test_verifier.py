"""node._verifier: a range verified by worker processes is judged exactly as in a
thread, and a worker that dies, hangs up or is cancelled costs nothing but speed.

The workers are real ``python -m node._verifier`` children.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import protocol
from node import _verifier
from node._verifier import VerifiedRun, Verifier, verify_run
from protocol import Entry, FeedHead

from .conftest import KEY, NET, NOW, PEER, PEER_KEY, PEER_NEW_KEY

KIND = "test.note/1"
COUNT = 40


def chain(count: int = COUNT, *, rotate_at: int | None = None) -> list[Entry]:
    """``count`` entries of PEER's feed from seq 1; the one at ``rotate_at`` (an index)
    rotates to PEER_NEW_KEY, and those after it are signed with that key."""
    made: list[Entry] = []
    head: FeedHead | None = None
    key = PEER_KEY
    for n in range(count):
        if n == rotate_at:
            assert head is not None
            entry = protocol.rotate_key(
                head, key=key, new_key=PEER_NEW_KEY, net=NET, now_ms=NOW + n, reason="scheduled"
            )
            key = PEER_NEW_KEY
        else:
            entry = protocol.append(head, {"n": n}, kind=KIND, key=key, net=NET, now_ms=NOW + n)
        head = protocol.head_after(head, entry)
        made.append(entry)
    return made


def flip_signature(wire: bytes) -> bytes:
    return wire[:-1] + bytes([wire[-1] ^ 1])


def other_feed_entry() -> bytes:
    return protocol.append(None, {"n": 0}, kind=KIND, key=KEY, net=NET, now_ms=NOW).wire


def resigned(entry: Entry, *, n: int, prev: bytes | None = None, ts: int | None = None) -> bytes:
    """A different entry at ``entry``'s seq, signed with PEER's first key (the one a
    rotation replaces), with ``prev`` and ``ts`` as given or as ``entry``'s."""
    return protocol.create_entry(
        key=PEER_KEY,
        net=NET,
        seq=entry.seq,
        prev=entry.prev if prev is None else prev,
        ts=entry.ts if ts is None else ts,
        content={"n": n},
        kind=KIND,
        author=PEER,
    ).wire


def summary(run: VerifiedRun) -> tuple[Any, ...]:
    code = run.error.code if run.error is not None else None
    return [e.id for e in run.entries], run.end, code, type(run.error)


Case = Callable[[], tuple[FeedHead | None, list[bytes]]]


def _plain() -> tuple[FeedHead | None, list[bytes]]:
    return None, [e.wire for e in chain()]


def _after_a_head() -> tuple[FeedHead | None, list[bytes]]:
    made = chain()
    head = protocol.head_after(None, made[0])
    for entry in made[1:10]:
        head = protocol.head_after(head, entry)
    return head, [e.wire for e in made[10:]]


def _bad_signature_in_second_share() -> tuple[FeedHead | None, list[bytes]]:
    wires = [e.wire for e in chain()]
    wires[31] = flip_signature(wires[31])
    return None, wires


def _bad_signature_in_first_share() -> tuple[FeedHead | None, list[bytes]]:
    wires = [e.wire for e in chain()]
    wires[3] = flip_signature(wires[3])
    return None, wires


def _bad_prev() -> tuple[FeedHead | None, list[bytes]]:
    made = chain()
    wires = [e.wire for e in made]
    wires[25] = resigned(made[25], n=-1, prev=bytes(32))  # names nothing: BAD_PREV
    return None, wires


def _another_feed() -> tuple[FeedHead | None, list[bytes]]:
    wires = [e.wire for e in chain()]
    wires[22] = other_feed_entry()
    return None, wires


def _a_gap() -> tuple[FeedHead | None, list[bytes]]:
    wires = [e.wire for e in chain()]
    del wires[27]
    return None, wires


def _rotation() -> tuple[FeedHead | None, list[bytes]]:
    return None, [e.wire for e in chain(rotate_at=12)]


def _old_key_after_rotation() -> tuple[FeedHead | None, list[bytes]]:
    made = chain(rotate_at=12)
    wires = [e.wire for e in made]
    wires[30] = resigned(made[30], n=-2)  # after the rotation: the old key
    return None, wires


def _future() -> tuple[FeedHead | None, list[bytes]]:
    made = chain()
    wires = [e.wire for e in made]
    wires[35] = resigned(made[35], n=35, ts=NOW + 10**9)
    return None, wires


CASES = [
    _plain,
    _after_a_head,
    _bad_signature_in_first_share,
    _bad_signature_in_second_share,
    _bad_prev,
    _another_feed,
    _a_gap,
    _rotation,
    _old_key_after_rotation,
    _future,
]


@pytest.fixture
async def verifier() -> AsyncIterator[Verifier]:
    started = Verifier(workers=2, process_min=1)
    started.start()
    await until(lambda: started.running == 2)
    yield started
    await started.close()


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__.strip("_"))
async def test_workers_judge_a_range_exactly_as_one_thread_does(
    verifier: Verifier, case: Case
) -> None:
    head, wires = case()
    expected = verify_run(head, PEER, wires, NET, NOW)
    before = verifier.in_process
    got = await verifier.run(head, PEER, wires, NET, NOW)
    assert verifier.in_process == before + 1  # it really went to the workers
    assert summary(got) == summary(expected)
    assert got.head == head and got.author == PEER
    assert [e.wire for e in got.entries] == [e.wire for e in expected.entries]


def test_the_cases_cover_each_outcome() -> None:
    """The cases above are worth comparing: they end in each way a run can end."""
    codes = {summary(verify_run(*_case_args(case)))[2] for case in CASES}
    assert codes == {
        None,
        protocol.ErrorCode.BAD_SIGNATURE,
        protocol.ErrorCode.BAD_PREV,
        protocol.ErrorCode.SEQ_GAP,
        protocol.ErrorCode.TS_IN_FUTURE,
    }
    lengths = {len(verify_run(*_case_args(case)).entries) for case in CASES}
    assert {3, 22, 25, 27, 30, 31, 35, COUNT, COUNT - 10} <= lengths


def _case_args(case: Case) -> tuple[FeedHead | None, bytes, list[bytes], bytes, int]:
    head, wires = case()
    return head, PEER, wires, NET, NOW


async def test_short_ranges_and_short_catch_ups_stay_in_a_thread() -> None:
    verifier = Verifier(workers=2, process_min=1)
    try:
        # not started (a short catch-up): no process, however long the range
        run = await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        assert len(run.entries) == COUNT
        await asyncio.sleep(0.2)
        assert verifier.running == 0 and verifier.in_process == 0
        # started, but the range is shorter than process_min
        verifier._process_min = 64
        verifier.start()
        await until(lambda: verifier.running == 2)
        run = await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        assert len(run.entries) == COUNT and verifier.in_process == 0
    finally:
        await verifier.close()


async def test_no_workers_means_threads_only() -> None:
    verifier = Verifier(workers=0, process_min=1)
    for _ in range(2):
        run = await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        assert len(run.entries) == COUNT
    assert verifier.running == 0 and verifier.in_process == 0
    await verifier.close()


async def test_a_killed_worker_costs_one_range_in_a_thread_then_is_replaced(
    verifier: Verifier, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_verifier, "RETRY_S", 0.0)
    _, wires = _bad_signature_in_second_share()
    expected = summary(verify_run(None, PEER, wires, NET, NOW))
    for pid in _worker_pids(verifier):
        os.kill(pid, signal.SIGKILL)
    await until(lambda: verifier.running == 0)
    with caplog.at_level(logging.WARNING, logger="node._verifier"):
        assert summary(await verifier.run(None, PEER, wires, NET, NOW)) == expected
    assert "verifier process failed" in caplog.text
    await until(lambda: verifier.running == 2)  # started again
    before = verifier.in_process
    assert summary(await verifier.run(None, PEER, wires, NET, NOW)) == expected
    assert verifier.in_process == before + 1


async def test_a_worker_dying_mid_range_loses_nothing(verifier: Verifier) -> None:
    """The worker dies while it checks its share: the range is checked in a thread."""
    wires = [e.wire for e in chain(COUNT)]
    slot = verifier._slots[0]
    assert slot.worker is not None
    real_ask = slot.worker.ask

    async def dies(request: Any) -> Any:
        os.kill(_pid(slot), signal.SIGKILL)
        return await real_ask(request)

    slot.worker.ask = dies  # type: ignore[method-assign]
    before = verifier.in_process
    run = await verifier.run(None, PEER, wires, NET, NOW)
    assert [e.wire for e in run.entries] == wires and run.error is None
    assert verifier.in_process == before  # answered by the thread


async def test_a_cancelled_range_stops_its_workers_and_the_next_is_judged_right(
    verifier: Verifier,
) -> None:
    wires = [e.wire for e in chain(COUNT)]
    pids = _worker_pids(verifier)
    task = asyncio.ensure_future(verifier.run(None, PEER, wires * 50, NET, NOW))
    await asyncio.sleep(0)  # the request is on its way
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # their answers would have been read by the next caller: they were stopped
    for pid in pids:
        await until(lambda pid=pid: not _alive(pid))  # type: ignore[misc]
    _, bad = _bad_prev()
    assert summary(await verifier.run(None, PEER, bad, NET, NOW)) == summary(
        verify_run(None, PEER, bad, NET, NOW)
    )


async def test_idle_workers_are_stopped() -> None:
    verifier = Verifier(workers=1, process_min=1, idle_s=0.3)
    try:
        verifier.start()
        await until(lambda: verifier.running == 1)
        pids = _worker_pids(verifier)
        await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        await until(lambda: verifier.running == 0, timeout_s=10)
        await until(lambda: not _alive(pids[0]))
        # stopped idle: the next short catch-up does not start them again
        await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        await asyncio.sleep(0.2)
        assert verifier.running == 0
    finally:
        await verifier.close()


async def test_close_stops_the_workers_and_later_ranges_use_threads(verifier: Verifier) -> None:
    pids = _worker_pids(verifier)
    await verifier.close()
    assert verifier.running == 0
    for pid in pids:
        assert not _alive(pid)
    run = await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
    assert len(run.entries) == COUNT and verifier.running == 0


def test_a_worker_exits_when_its_node_closes_the_pipe() -> None:
    """What makes a node killed with SIGKILL leave no worker behind: the kernel closes
    the node's end of the pipe, and the worker ends on end of file."""
    child = subprocess.Popen(
        [sys.executable, "-m", "node._verifier"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(_verifier._frame(None))
    child.stdin.flush()
    size = int.from_bytes(child.stdout.read(4), "big")
    assert pickle.loads(child.stdout.read(size)) == "ready"
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    child.stdout.close()


def test_malformed_answers_are_worker_errors() -> None:
    entry = chain(1)[0]
    assert _verifier._decode(([entry], None)) == ([entry], None)
    refused = _verifier._decode(([], (True, "BAD_PREV", "no")))
    assert isinstance(refused[1], protocol.RemoteProtocolError)
    assert refused[1].code is protocol.ErrorCode.BAD_PREV
    answers: list[Any] = [
        None,
        "ready",
        ([entry],),
        ((entry,), None),
        (["x"], None),
        ([], (1, "NOPE", "x")),
    ]
    for answer in answers:
        with pytest.raises(_verifier._WorkerError):
            _verifier._decode(answer)


def _pid(slot: Any) -> int:
    return int(slot.worker._process.pid)


def _worker_pids(verifier: Verifier) -> list[int]:
    return [_pid(slot) for slot in verifier._slots if slot.worker is not None]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_an_unused_worker_ends_by_itself() -> None:
    """Should its node's event loop end without closing the feed store, the worker
    does not wait for the node's own exit."""
    read, write = os.pipe()
    try:
        started = time.monotonic()
        assert _verifier._serve(read, io.BytesIO(), 0.2) == 0
        assert time.monotonic() - started >= 0.2
    finally:
        os.close(read)
        os.close(write)


async def test_a_worker_that_ended_by_itself_is_restarted_without_a_warning(
    verifier: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    for slot in verifier._slots:
        assert slot.worker is not None
        stdin = slot.worker._process.stdin
        assert stdin is not None
        stdin.close()  # as if idle: it exits with status 0
    await until(lambda: not any(_alive(pid) for pid in _worker_pids(verifier)))
    with caplog.at_level(logging.WARNING, logger="node._verifier"):
        run = await verifier.run(None, PEER, [e.wire for e in chain()], NET, NOW)
        assert len(run.entries) == COUNT
        await until(lambda: verifier.running == 2)  # no back-off: started again at once
    assert "failed" not in caplog.text


async def test_a_hung_worker_is_killed_after_the_answer_timeout(
    verifier: Verifier, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_verifier, "ANSWER_TIMEOUT_S", 0.5)
    pids = _worker_pids(verifier)
    os.kill(pids[0], signal.SIGSTOP)  # alive, never answers
    _, wires = _bad_prev()
    before = verifier.in_process
    with caplog.at_level(logging.WARNING, logger="node._verifier"):
        run = await verifier.run(None, PEER, wires, NET, NOW)
    assert summary(run) == summary(verify_run(None, PEER, wires, NET, NOW))
    assert verifier.in_process == before  # the thread answered
    assert "no answer in 0.5 s" in caplog.text
    await until(lambda: not _alive(pids[0]))  # killed (SIGKILL ends a stopped process)
