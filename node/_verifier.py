"""Verifying a catch-up's ranges: in worker processes, or in a worker thread.

A replica pulling a long feed verifies each range of entries (``verify_run``) while the
range before it is written and the one after it fetched (``node.federation``'s
replicator). PyNaCl releases the GIL while it checks a signature, but the rest of an
entry's check is Python: in a worker thread it contends for the GIL with the event loop
and the database driver's thread, and the verifying thread waited for it as long as it
worked (``tools/bench_ingest.py``: 256 entries took 40 ms in the node against 20 ms
alone; two threads were slower still). :class:`Verifier` therefore shares each range
of at least ``process_min`` entries between worker processes (``python -m
node._verifier``, which imports only ``protocol``: about 30 MiB each), started when a
long catch-up begins (:meth:`Verifier.start`) and stopped when idle. Each checks its
share's entries on their own with the feed's current key (:func:`check_signed`); this
process then checks their links in order (:func:`link`, with ``protocol.follows``),
and verifies again, in order, what follows a key rotation. Smaller ranges, short
catch-ups, and any range while the workers start, are busy or have failed, are
verified in a thread. Both ways give the same answer, entry for entry and error for
error (``tests/node/test_verifier.py``).

The pipe carries length-prefixed pickles between this process and the children it
started, and nothing else: entries (``protocol.Entry`` pickles without its slices of
the wire), a refusal as its code and message. A child runs as the node's own user with
the node's own code, so unpickling what it sends crosses no trust boundary; what a peer
sent reaches it only as bytes inside the pickle. A child exits when its stdin closes,
so a node killed with ``kill -9`` leaves none behind, and after :data:`WORKER_IDLE_S`
unused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import select
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import protocol
from node._tasks import drop_outcome
from protocol import Entry, ErrorCode, FeedHead

__all__ = ["PROCESS_MIN", "VerifiedRun", "Verifier", "check_signed", "link", "verify_run"]

_log = logging.getLogger(__name__)

#: Ranges of at least this many entries go to the worker process (a live entry or a
#: short catch-up costs less in a thread than its round trip through the pipe).
PROCESS_MIN: Final = 128
#: The worker process is stopped after this long unused (its memory is returned).
IDLE_S: Final = 30.0
#: A worker ends by itself after this long without a request, should its node not
#: have stopped it (a node whose event loop ended without closing its feed store).
WORKER_IDLE_S: Final = 2 * IDLE_S
#: A worker that has not answered in this long is killed, and the range checked in a
#: thread instead (a range is at most 1 MB: it takes well under a second, and a few on
#: a loaded single-board computer).
ANSWER_TIMEOUT_S: Final = 15.0
#: After the worker failed (would not start, died, answered garbage), ranges are
#: checked in threads for this long before it is started again.
RETRY_S: Final = 60.0
_HEADER: Final = 4
_ROTATE_KIND: Final = protocol.KeyRotate.KIND


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedRun:
    """Entries verified as the next ones of ``author``'s feed after ``head``
    (:func:`verify_run`): ``end`` is the head after the last of them, and ``error`` what
    refused the entry that followed them, if one did."""

    author: bytes
    head: FeedHead | None
    entries: list[Entry]
    end: FeedHead | None
    error: protocol.ProtocolError | None


def verify_run(
    head: FeedHead | None, author: bytes, wires: Sequence[bytes], net: bytes, now_ms: int
) -> VerifiedRun:
    """Verify ``wires`` as the entries after ``head`` while they are ``author``'s next
    ones: stops at another feed's entry (no error) or at an invalid one (its error).
    Pure: runs in a worker thread or the worker process."""
    verified: list[Entry] = []
    end = head
    error: protocol.ProtocolError | None = None
    for wire in wires:
        try:
            entry, after = protocol.verify_next(end, wire, net=net, now_ms=now_ms)
        except protocol.ProtocolError as refused:
            if refused.code is not ErrorCode.WRONG_AUTHOR:
                error = refused
            break  # another feed's entry: the entry-by-entry path takes it
        if entry.author != author:  # a first entry (no head to check it against)
            break
        verified.append(entry)
        end = after
    return VerifiedRun(author=author, head=head, entries=verified, end=end, error=error)


def check_signed(
    wires: Sequence[bytes], key: bytes, author: bytes, net: bytes, now_ms: int
) -> tuple[list[Entry], protocol.ProtocolError | None]:
    """Each of ``wires`` verified on its own (``protocol.verify_entry``) as ``author``'s,
    signed with ``key``, up to the first that is not, and what refused that one. Pure:
    one worker's share of a range, whose links :func:`link` then checks."""
    verified: list[Entry] = []
    for wire in wires:
        try:
            verified.append(
                protocol.verify_entry(wire, net=net, now_ms=now_ms, key=key, author=author)
            )
        except protocol.ProtocolError as refused:
            return verified, refused
    return verified, None


def link(
    head: FeedHead | None,
    author: bytes,
    wires: Sequence[bytes],
    checked: Sequence[tuple[list[Entry], protocol.ProtocolError | None]],
    net: bytes,
    now_ms: int,
) -> VerifiedRun:
    """What :func:`verify_run` makes of ``wires``, from consecutive shares of them that
    :func:`check_signed` verified with ``head``'s key: their links are checked in order
    (``protocol.follows``). After a key rotation the rest was checked with the key it
    replaced, so it is verified again, entry after entry."""
    verified: list[Entry] = []
    end = head
    for share, refused in checked:
        for entry in share:
            try:
                after = protocol.follows(end, entry)
            except protocol.ProtocolError as error:
                return VerifiedRun(author=author, head=head, entries=verified, end=end, error=error)
            verified.append(entry)
            end = after
            if entry.kind == _ROTATE_KIND:
                rest = verify_run(end, author, wires[len(verified) :], net, now_ms)
                return VerifiedRun(
                    author=author,
                    head=head,
                    entries=verified + rest.entries,
                    end=rest.end,
                    error=rest.error,
                )
        if refused is not None:
            stop = None if refused.code is ErrorCode.WRONG_AUTHOR else refused
            return VerifiedRun(author=author, head=head, entries=verified, end=end, error=stop)
    return VerifiedRun(author=author, head=head, entries=verified, end=end, error=None)


class Verifier:
    """Where :func:`verify_run` runs (module docstring). One per feed store.

    Args:
        workers: worker processes a long range is shared between (default: two on a
            machine with at least two cores, else none); 0 never starts one (every
            range in a thread).
        process_min: ranges of at least this many entries go to the workers.
        idle_s: the workers are stopped after this long unused.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        process_min: int = PROCESS_MIN,
        idle_s: float = IDLE_S,
    ) -> None:
        count = workers if workers is not None else (2 if (os.cpu_count() or 1) >= 2 else 0)
        self._slots = [_Slot() for _ in range(count)]
        self._process_min = process_min
        self._idle_s = idle_s
        self._idle: asyncio.TimerHandle | None = None
        self._closed = False
        self._wanted = False  # start() was called since the workers last stopped
        #: Ranges checked by worker processes so far (for tests and benchmarks).
        self.in_process = 0

    def start(self) -> None:
        """Start the workers in the background, for a catch-up long enough to repay
        their start (a third of a second of CPU each); ranges use them once they are
        up, until they stop idle. Short catch-ups never call this: their ranges are
        checked in threads."""
        if self._closed or not self._slots:
            return
        self._wanted = True
        for slot in self._slots:
            slot.ready()
        self._arm_idle()

    async def run(
        self, head: FeedHead | None, author: bytes, wires: list[bytes], net: bytes, now_ms: int
    ) -> VerifiedRun:
        """:func:`verify_run`, shared between the worker processes that are up and free
        when the range is long enough, else in a worker thread."""
        slots = self._ready(len(wires))
        if slots:
            key = head.key if head is not None else author
            size = -(-len(wires) // len(slots))
            shares = [wires[i : i + size] for i in range(0, len(wires), size)]
            for slot in slots:
                slot.busy = True
            try:
                answers = await asyncio.gather(
                    *(
                        self._ask(slot, ("check", share, key, author, net, now_ms))
                        for slot, share in zip(slots, shares, strict=False)
                    )
                )
            finally:
                for slot in slots:
                    slot.busy = False
                self._arm_idle()
            if all(answer is not None for answer in answers):
                self.in_process += 1
                checked = [a for a in answers if a is not None]
                return link(head, author, wires, checked, net, now_ms)
        return await asyncio.to_thread(verify_run, head, author, wires, net, now_ms)

    async def close(self) -> None:
        """Stop the worker processes; ranges after this use threads."""
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
        for slot in self._slots:
            await slot.stop()

    @property
    def running(self) -> int:
        """How many worker processes are up."""
        return sum(1 for slot in self._slots if slot.alive)

    def _ready(self, count: int) -> list[_Slot]:
        """The free workers to share a range of ``count`` entries, or none (a thread);
        once :meth:`start` was called, starts again those that are not running."""
        if count < self._process_min or self._closed or not self._wanted:
            return []
        ready = []
        for slot in self._slots:
            if slot.ready():
                ready.append(slot)
        return ready

    async def _ask(self, slot: _Slot, request: Any) -> tuple[list[Entry], Any] | None:
        """One worker's share checked, or None if it failed (then checked in a thread)."""
        worker = slot.worker
        assert worker is not None
        try:
            return _decode(await worker.ask(request))
        except asyncio.CancelledError:
            slot.drop("cancelled")  # its answer would be left in the pipe for the next
            raise
        except _WorkerError as error:
            slot.fail(str(error))
            return None

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self._idle_s, self._stop_idle)

    def _stop_idle(self) -> None:
        self._idle = None
        if any(slot.busy for slot in self._slots):
            self._arm_idle()
            return
        self._wanted = False
        for slot in self._slots:
            slot.drop("idle")


class _Slot:
    """A worker process, started on demand, and what became of the last start."""

    def __init__(self) -> None:
        self.worker: _Worker | None = None
        self.busy = False
        self._starting: asyncio.Task[None] | None = None
        self._failed_at: float | None = None
        self._reaping: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive

    def ready(self) -> bool:
        """Whether it can take a share now; starts it if it is wanted and down."""
        worker = self.worker
        if worker is not None and not worker.alive:
            if worker.returncode == 0:  # it stopped itself, idle (WORKER_IDLE_S)
                self.drop("ended idle")
            else:
                self.fail(f"exited with status {worker.returncode}")
            worker = None
        if worker is None:
            failed = self._failed_at
            if self._starting is None and (failed is None or time.monotonic() - failed > RETRY_S):
                self._starting = asyncio.ensure_future(self._start())
            return False
        return not self.busy

    async def _start(self) -> None:
        try:
            worker = await _Worker.start()
        except (OSError, _WorkerError) as error:
            self._failed_at = time.monotonic()
            _log.warning(
                "verifier process did not start (%s); ranges are verified in threads",
                error,
                extra={"event": "verifier.start_failed"},
            )
            return
        finally:
            self._starting = None
        self.worker = worker
        self._failed_at = None

    def fail(self, why: str) -> None:
        self._failed_at = time.monotonic()
        _log.warning(
            "verifier process failed (%s); ranges are verified in threads for %d s",
            why,
            RETRY_S,
            extra={"event": "verifier.failed"},
        )
        self.drop(why)

    def drop(self, why: str) -> None:
        """Kill the worker now; it is reaped in the background (:meth:`stop` waits)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.kill()
            self._reaping = asyncio.ensure_future(worker.stop())
            self._reaping.add_done_callback(drop_outcome)
            _log.debug("verifier process stopped: %s", why, extra={"event": "verifier.stopped"})

    async def stop(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop()
        if self._reaping is not None:
            with contextlib.suppress(Exception):
                await self._reaping


class _WorkerError(Exception):
    """The worker process did not answer as it should (it died, or sent garbage)."""


class _Worker:
    """One ``python -m node._verifier`` child, asked one range at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "node._verifier",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        try:  # it is ready once it answers (its imports done)
            pong = await worker.ask(None)
            if pong != "ready":
                raise _WorkerError(f"unexpected greeting {pong!r}")
        except BaseException:
            worker.kill()
            await worker.stop()  # reaped, even when cancelled (the cancel is spent)
            raise
        return worker

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def ask(self, request: Any) -> Any:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                stdin.write(_frame(request))
                await stdin.drain()
                size = int.from_bytes(await stdout.readexactly(_HEADER), "big")
                return pickle.loads(await stdout.readexactly(size))
        except TimeoutError:
            raise _WorkerError(f"no answer in {ANSWER_TIMEOUT_S:g} s") from None
        except (OSError, EOFError, asyncio.IncompleteReadError) as error:
            raise _WorkerError(f"{type(error).__name__}: {error}") from None
        except pickle.UnpicklingError as error:
            raise _WorkerError(f"unreadable answer: {error}") from None

    def kill(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def stop(self) -> None:
        """Close its stdin (it exits), killing it if it has not within 5 s."""
        stdin = self._process.stdin
        if stdin is not None:
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            self.kill()
            await self._process.wait()


def _frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "big") + data


def _decode(answer: Any) -> tuple[list[Entry], protocol.ProtocolError | None]:
    """A worker's answer (:func:`_answer`) as :func:`check_signed` returned it;
    _WorkerError if it is not one."""
    try:
        entries, refused = answer
        error: protocol.ProtocolError | None = None
        if refused is not None:
            remote, code, message = refused
            kind = protocol.RemoteProtocolError if remote else protocol.LocalProtocolError
            error = kind(message, code=ErrorCode(code))
        if type(entries) is not list or not all(type(e) is Entry for e in entries):
            raise TypeError("entries of the wrong type")
    except (TypeError, ValueError) as problem:
        raise _WorkerError(f"malformed answer: {problem}") from None
    return entries, error


def _answer(checked: tuple[list[Entry], protocol.ProtocolError | None]) -> tuple[Any, ...]:
    entries, error = checked
    refused = None
    if error is not None:  # errors do not pickle (keyword-only code): their parts do
        remote = isinstance(error, protocol.RemoteProtocolError)
        refused = (remote, str(error.code), error.message)
    return entries, refused


def _serve(stdin: int, stdout: BinaryIO, idle_s: float) -> int:
    """The worker's loop: a request per frame, ``None`` asks whether it is ready. It
    ends when the pipe closes, and after ``idle_s`` without a request (its node, if
    still there, starts another when it needs one)."""
    while True:
        if not select.select([stdin], [], [], idle_s)[0]:
            return 0
        header = _read_exactly(stdin, _HEADER)
        if header is None:
            return 0  # the node closed the pipe, or died
        body = _read_exactly(stdin, int.from_bytes(header, "big"))
        if body is None:
            return 0
        request = pickle.loads(body)
        if request is None:
            stdout.write(_frame("ready"))
        else:
            _check, wires, key, author, net, now_ms = request
            stdout.write(_frame(_answer(check_signed(wires, key, author, net, now_ms))))
        stdout.flush()


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd`` (unbuffered, so that select sees what is pending), or
    None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    sys.exit(_serve(sys.stdin.fileno(), sys.stdout.buffer, WORKER_IDLE_S))
