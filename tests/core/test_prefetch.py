import threading

import pytest

from pipeline.prefetch import prefetch


def test_yields_everything_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_producer_errors_reach_the_consumer():
    def broken():
        yield 1
        raise ValueError("corrupt frame 2")

    got = []
    with pytest.raises(ValueError, match="corrupt frame 2"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]


def test_abandoning_stops_the_producer():
    produced, closed = [], []

    def endless():
        i = 0
        try:
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.append(True)

    stream = prefetch(endless(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "prefetch" and t.is_alive()]
    assert closed == [True]  # the source was closed (it may hold an open file)
    assert len(produced) <= 2 + 2  # the queue's depth, one in hand, one being put: no more
