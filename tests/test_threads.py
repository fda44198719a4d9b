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
