import pytest
import torch

from cohesiv.errors import CohesivError
from cohesiv.threads import auto_threads, parse_threads, set_threads


def test_auto_threads_leaves_busy_cores_alone():
    assert auto_threads(2, 0.0) == 2  # idle: every CPU
    assert auto_threads(2, 0.4) == 2
    assert auto_threads(2, 0.6) == 1  # one core busy
    assert auto_threads(2, 3.0) == 1  # full: never 0
    assert auto_threads(8, 2.2) == 6
    assert 1 <= auto_threads() <= max(1, torch.get_num_threads(), auto_threads(load=0.0))


def test_parse_threads():
    assert parse_threads("auto") is None and parse_threads(None) is None
    assert parse_threads("3") == 3 and parse_threads(2) == 2
    for bad in ("0", "-1", "two", 0):
        with pytest.raises(CohesivError, match="--threads"):
            parse_threads(bad)


def test_set_threads_honours_the_value_and_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == (1, "--threads") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert set_threads("auto") == (2, "OMP_NUM_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS")
        n, why = set_threads("auto")
        assert n == torch.get_num_threads() >= 1 and why.startswith("auto")
    finally:
        torch.set_num_threads(before)


def test_other_runnable_is_the_median_of_the_run_queue_without_us():
    from cohesiv.threads import other_runnable

    reads = iter(["1.90 1.2 0.8 1/93 1803", "0.1 0.1 0.1 3/93 1803", "1.9 1.2 0.8 1/93 1803"])
    # the 1-minute average says 1.9, the queue says nobody else runs (R = 1 is this process)
    assert other_runnable(3, 0.0, read=lambda: next(reads)) == 0.0
    assert other_runnable(1, 0.0, read=lambda: "0.5 0.5 0.5 4/90 1") == 3.0
    assert other_runnable(2, 0.0, read=lambda: "garbage") is None


def test_auto_threads_uses_the_run_queue_now(monkeypatch):
    import cohesiv.threads as th

    monkeypatch.setattr(th, "other_runnable", lambda: 0.0)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (1.9, 1.0, 1.0))  # a predecessor's lagging load
    assert th.auto_threads(2) == 2
    monkeypatch.setattr(th, "other_runnable", lambda: None)  # no /proc: the average
    assert th.auto_threads(2) == 1


def test_our_own_busy_threads_are_not_other_load():
    # /proc/loadavg counts threads: this process's own busy workers (torch's OpenMP pool spins after
    # a parallel region) must not read as another job's load
    import hashlib
    import threading

    from cohesiv.threads import other_runnable, own_runnable

    assert other_runnable(1, 0.0, read=lambda: "0 0 0 3/90 1", own=lambda: 3) == 0.0
    assert other_runnable(1, 0.0, read=lambda: "0 0 0 5/90 1", own=lambda: 3) == 2.0
    assert own_runnable() >= 1  # the caller itself
    stop = threading.Event()
    data = bytes(50_000_000)

    def busy() -> None:  # hashlib releases the GIL on large buffers: a truly running thread
        while not stop.is_set():
            hashlib.sha256(data).digest()

    workers = [threading.Thread(target=busy) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        seen = max(own_runnable() for _ in range(20))
        assert seen >= 2  # the workers are counted as ours
    finally:
        stop.set()
        for w in workers:
            w.join()
