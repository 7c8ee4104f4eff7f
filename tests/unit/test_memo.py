"""The identity-keyed cache used for facts derived from certificates (mailseal._memo)."""

from __future__ import annotations

import threading

import pytest

from mailseal._memo import per_object


class Thing:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:  # equal things are still distinct objects
        return isinstance(other, Thing) and other.value == self.value

    def __hash__(self) -> int:
        raise AssertionError("per_object must not hash its argument")


def test_same_object_is_computed_once_equal_objects_are_not_confused() -> None:
    calls: list[int] = []

    @per_object(maxsize=8)
    def double(t: Thing) -> int:
        calls.append(t.value)
        return t.value * 2

    a, b = Thing(1), Thing(1)
    assert double(a) == 2 and double(a) == 2
    assert calls == [1]
    assert double(b) == 2  # equal, but another object: computed again
    assert calls == [1, 1]
    assert double.__name__ == "double" and len(double) == 2


def test_bounded_oldest_dropped_first_and_no_stale_answer_after_id_reuse() -> None:
    @per_object(maxsize=3)
    def value(t: Thing) -> int:
        return t.value

    things = [Thing(i) for i in range(10)]
    assert [value(t) for t in things] == list(range(10))
    assert len(value) == 3
    # objects created after others died may reuse their ids: the answer is still theirs
    for i in range(200):
        assert value(Thing(1000 + i)) == 1000 + i
    value.cache_clear()
    assert len(value) == 0


def test_exceptions_are_not_remembered() -> None:
    attempts = []

    @per_object()
    def flaky(t: Thing) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first time")
        return t.value

    t = Thing(5)
    with pytest.raises(ValueError):
        flaky(t)
    assert flaky(t) == 5 and flaky(t) == 5
    assert len(attempts) == 2


def test_threads_share_the_cache_safely() -> None:
    @per_object(maxsize=16)
    def square(t: Thing) -> int:
        return t.value * t.value

    things = [Thing(i) for i in range(64)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                for t in things:
                    assert square(t) == t.value * t.value
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(square) <= 16 + len(threads)  # each thread may add one past the bound at once


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        per_object(maxsize=0)(lambda t: t)
