"""mailseal._background.BackgroundFeed: pieces consumed in order, in a second thread once
they are large; errors handed back; a dropped or aborted feed stops its thread."""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time

import pytest

from mailseal._background import BackgroundFeed, fan_out


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mailseal-feed"]


def _wait_for_no_feed_threads() -> None:
    for _ in range(200):
        if not _feed_threads():
            return
        time.sleep(0.01)
    raise AssertionError("a mailseal-feed thread is still running")


def test_small_pieces_are_consumed_at_once_without_a_thread() -> None:
    seen: list[bytes] = []
    feed = BackgroundFeed(seen.append, min_piece=100)
    feed(b"one")
    feed(b"two")
    assert seen == [b"one", b"two"]
    assert not feed.threaded
    feed.close()
    assert seen == [b"one", b"two"]


def test_large_pieces_go_through_the_thread_in_order() -> None:
    pieces = [os.urandom(n) for n in (10, 300, 5, 400, 1, 250, 7)]
    reference = hashlib.sha256(b"".join(pieces)).digest()
    h = hashlib.sha256()
    order: list[int] = []

    def consume(data: bytes) -> None:
        order.append(len(data))
        h.update(data)

    feed = BackgroundFeed(consume, min_piece=256, depth=2)
    for p in pieces:
        feed(p)
    assert feed.threaded
    feed.close()
    assert order == [len(p) for p in pieces]
    assert h.digest() == reference
    _wait_for_no_feed_threads()


def test_a_mutable_buffer_is_copied_before_it_is_queued() -> None:
    seen: list[bytes] = []
    started = threading.Event()
    release = threading.Event()

    def consume(data: bytes) -> None:
        started.set()
        release.wait(5)
        seen.append(data)

    feed = BackgroundFeed(consume, min_piece=4)
    feed(b"first piece")
    assert started.wait(5)
    buf = bytearray(b"second piece")
    feed(memoryview(buf))  # type: ignore[arg-type]
    buf[:] = b"XXXXXXXXXXXX"
    release.set()
    feed.close()
    assert seen == [b"first piece", b"second piece"]


def test_an_error_in_consume_comes_back_from_close() -> None:
    def consume(data: bytes) -> None:
        if data.startswith(b"bad"):
            raise ValueError("cannot take this piece")

    feed = BackgroundFeed(consume, min_piece=4)
    feed(b"good piece")
    feed(b"bad piece")
    with pytest.raises(ValueError, match="cannot take"):
        feed.close()
    _wait_for_no_feed_threads()


def test_an_error_is_raised_by_the_next_piece_too() -> None:
    failed = threading.Event()

    def consume(data: bytes) -> None:
        failed.set()
        raise OSError("disk gone")

    feed = BackgroundFeed(consume, min_piece=1)
    feed(b"x")
    assert failed.wait(5)
    for _ in range(100):  # the error is recorded just after the event
        try:
            feed(b"y")
        except OSError:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the error was not raised")
    with pytest.raises(OSError, match="disk gone"):
        feed.close()


def test_abort_and_drop_stop_the_thread() -> None:
    blocker = threading.Event()

    def slow(data: bytes) -> None:
        blocker.wait(5)

    feed = BackgroundFeed(slow, min_piece=1, depth=2)
    feed(b"a")
    feed(b"b")
    assert len(_feed_threads()) == 1
    feed.abort()
    blocker.set()
    _wait_for_no_feed_threads()

    blocker.clear()
    feed = BackgroundFeed(slow, min_piece=1, depth=1)
    feed(b"a")
    feed(b"b")  # the queue is now full: dropping the feed must not block
    del feed
    gc.collect()
    blocker.set()
    _wait_for_no_feed_threads()


def test_fan_out_feeds_every_consumer() -> None:
    a, b = hashlib.sha256(), hashlib.sha512()
    one = fan_out([a.update])
    assert one == a.update
    both = fan_out([a.update, b.update])
    both(b"data")
    assert a.digest() == hashlib.sha256(b"data").digest()
    assert b.digest() == hashlib.sha512(b"data").digest()
