"""Work on the pieces of a large stream in a second thread, in order.

Hashing a large message (hashlib lets go of the GIL for pieces over 2 KiB) can then run at
the same time as reading, checking, encoding and writing it, on another core. Small inputs
never start a thread: pieces are handed on at once until the first large one arrives, and
from then on every piece goes through the thread, so the order is kept.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded when a thread is first needed: a small message never needs one
    import queue
    import threading

__all__ = ["BackgroundFeed", "fan_out"]

#: the first piece at least this long starts the thread
MIN_PIECE = 256 << 10
#: pieces waiting at most (bounds the memory held: 8 pieces of 1 MiB while reading a stream)
DEPTH = 8


def _drain(
    q: queue.Queue[bytes | None],
    consume: Callable[[bytes], object],
    box: list[BaseException],
    stop: threading.Event,
) -> None:
    while True:
        item = q.get()
        if item is None or stop.is_set():
            return
        if not box:
            try:
                consume(item)
            except BaseException as exc:  # handed to the caller by close()
                box.append(exc)


def fan_out(consumers: list[Callable[[bytes], None]]) -> Callable[[bytes], None]:
    """One call that hands each piece to every consumer in turn (several digests at once)."""
    if len(consumers) == 1:
        return consumers[0]

    def consume(data: bytes) -> None:
        for c in consumers:
            c(data)

    return consume


def _stop(q: queue.Queue[bytes | None], stop: threading.Event) -> None:
    # never blocks (it may run wherever the feed is collected): a full queue is noticed by the
    # thread after its next piece
    import queue

    stop.set()
    with contextlib.suppress(queue.Full):
        q.put_nowait(None)


class BackgroundFeed:
    """``feed(data)`` hands ``data`` to ``consume``; :meth:`close` waits until every piece was
    consumed and raises what ``consume`` raised. A feed that is dropped without being closed
    stops its thread when it is garbage-collected."""

    __slots__ = (
        "__weakref__",
        "_box",
        "_consume",
        "_depth",
        "_finalizer",
        "_min",
        "_queue",
        "_thread",
    )

    def __init__(
        self, consume: Callable[[bytes], object], *, min_piece: int = MIN_PIECE, depth: int = DEPTH
    ) -> None:
        self._consume = consume
        self._min = min_piece
        self._depth = depth
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._box: list[BaseException] = []
        self._finalizer: weakref.finalize[..., BackgroundFeed] | None = None

    @property
    def threaded(self) -> bool:
        """Whether the pieces go through the second thread."""
        return self._queue is not None

    def __call__(self, data: bytes) -> None:
        q = self._queue
        if q is None:
            if len(data) < self._min:
                self._consume(data)
                return
            q = self._start()
        if self._box:
            self._raise()
        q.put(data if type(data) is bytes else bytes(data))

    def _start(self) -> queue.Queue[bytes | None]:
        import queue
        import threading

        q: queue.Queue[bytes | None] = queue.Queue(maxsize=self._depth)
        stop = threading.Event()
        thread = threading.Thread(
            target=_drain,
            args=(q, self._consume, self._box, stop),
            name="mailseal-feed",
            daemon=True,
        )
        thread.start()
        self._queue, self._thread = q, thread
        # the thread refers to the queue, never to the feed: a dropped feed still stops it
        self._finalizer = weakref.finalize(self, _stop, q, stop)
        return q

    def close(self) -> None:
        """Wait for every piece handed on so far to be consumed; raise what consume raised."""
        q, thread = self._queue, self._thread
        if q is not None and thread is not None:
            self._queue = self._thread = None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            q.put(None)
            thread.join()
        if self._box:
            self._raise()

    def abort(self, *, wait: bool = False) -> None:
        """Stop the thread and drop the pieces still queued (after a failure, or to start
        over). With ``wait``, return only when the thread has stopped, so that nothing it
        does can follow."""
        thread = self._thread
        self._queue = self._thread = None
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        if wait and thread is not None:
            thread.join()

    def _raise(self) -> None:
        exc = self._box[0]
        raise exc
