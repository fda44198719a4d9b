import numpy as np
import pytest
from flow_util import textured, translate

from cohesiv.errors import InputError
from cohesiv.flow import FlowCache, FlowEstimator
from cohesiv.flow.store import flow_file
from cohesiv.io import read_flo

N = 12


class CountingEstimator:
    """Fake estimator: flow t -> s is the constant (s - t, 0); counts calls per pair."""

    def __init__(self):
        self.calls = {}
        self.config = FlowEstimator().config

    def __call__(self, a, b):
        t, s = int(a[0, 0, 0]), int(b[0, 0, 0])
        self.calls[(t, s)] = self.calls.get((t, s), 0) + 1
        f = np.zeros((2, 8, 8), np.float32)
        f[0] = s - t
        return f


def make_frame(t):
    return np.full((8, 8, 3), t, np.uint8)


def sliding_window(cache, radius=3, backward=True):
    for t in range(N):
        for k in range(-radius, radius + 1):
            s = t + k
            if k == 0 or not 0 <= s < N:
                continue
            f = cache.get(t, s)
            assert f[0, 0, 0] == s - t
            if backward:
                cache.get(s, t)


def test_sliding_window_computes_each_pair_once():
    est = CountingEstimator()
    reads = []
    cache = FlowCache(est, lambda t: reads.append(t) or make_frame(t))
    sliding_window(cache)
    pairs = {(t, s) for t in range(N) for s in range(N) if 0 < abs(s - t) <= 3}
    assert set(est.calls) == pairs
    assert max(est.calls.values()) == 1
    st = cache.stats
    assert st.computed == len(pairs) and st.recomputed == 0
    assert st.hits + st.misses == 2 * len(pairs) and st.hits == len(pairs)
    assert st.frame_reads == N == len(reads)  # each frame read once
    assert len(cache) <= 64


def test_lru_is_bounded_and_too_small_a_cache_is_counted():
    est = CountingEstimator()
    cache = FlowCache(est, make_frame, max_flows=4, max_frames=2)
    sliding_window(cache)
    assert len(cache) == 4
    assert cache.stats.recomputed > 0
    assert cache.stats.recomputed == sum(v - 1 for v in est.calls.values())


def test_cache_dir_means_never_twice_even_when_evicted(tmp_path):
    est = CountingEstimator()
    cache = FlowCache(est, make_frame, max_flows=4, cache_dir=tmp_path)
    sliding_window(cache)
    assert max(est.calls.values()) == 1 and cache.stats.recomputed == 0
    assert cache.stats.disk_hits > 0
    f = read_flo(flow_file(tmp_path, 5, 3))
    assert f[0, 0, 0] == -2
    assert (tmp_path / "flow" / "bw2" / "000005.flo").exists()
    # a second run reads everything from disk
    est2 = CountingEstimator()
    cache2 = FlowCache(est2, make_frame, cache_dir=tmp_path)
    sliding_window(cache2)
    assert not est2.calls and cache2.stats.computed == 0


def test_cache_dir_of_another_method_is_refused(tmp_path):
    FlowCache(FlowEstimator(preset="fast"), make_frame, cache_dir=tmp_path)
    with pytest.raises(InputError, match="flow.json.*preset': 'fast'.*not.*'medium'"):
        FlowCache(FlowEstimator(preset="medium"), make_frame, cache_dir=tmp_path)


def test_returned_flows_are_read_only_and_same_pair_errors():
    cache = FlowCache(CountingEstimator(), make_frame)
    f = cache.get(0, 1)
    with pytest.raises(ValueError):
        f[0, 0, 0] = 5
    assert cache.get(0, 1) is f
    with pytest.raises(ValueError, match="two different frames"):
        cache.get(2, 2)


def test_valid_mask_with_a_real_estimator():
    base = textured(64, 80, seed=4)
    frames = [translate(base, 1.5 * t, 0) for t in range(4)]
    cache = FlowCache(FlowEstimator(preset="medium"), frames.__getitem__)
    ok = cache.valid(0, 2)
    assert ok.shape == (64, 80)
    assert ok[8:-8, 8:-12].mean() > 0.95  # pure translation: consistent away from the borders
    assert cache.stats.computed == 2
    assert abs(float(np.median(cache.get(0, 2)[0])) - 3.0) < 0.2


def test_streaming_frames_decode_a_video_once_for_a_sliding_window(tmp_path):
    import av

    from cohesiv.flow import StreamingFrames
    from cohesiv.io import FrameReader

    path = tmp_path / "clip.mp4"
    base = textured(64, 80, seed=6)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuv420p"
        for t in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(translate(base, t, 0), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    decoded = list(FrameReader(path))
    frames = StreamingFrames(path, keep=7)
    cache = FlowCache(FlowEstimator(preset="ultrafast"), frames)
    for t in range(10):
        for s in range(max(0, t - 3), min(10, t + 4)):
            if s != t:
                cache.get(t, s)
        np.testing.assert_array_equal(frames(t), decoded[t])
    assert frames.restarts == 0 and cache.stats.frame_reads == 10
    np.testing.assert_array_equal(frames(0), decoded[0])  # behind the window: restart
    assert frames.restarts == 1
    with pytest.raises(IndexError, match="out of range"):
        frames(10)


def test_cache_dir_of_another_clip_is_refused(tmp_path):
    FlowCache(CountingEstimator(), make_frame, cache_dir=tmp_path, clip=tmp_path / "a.mp4")
    FlowCache(CountingEstimator(), make_frame, cache_dir=tmp_path, clip=tmp_path / "a.mp4")  # same: fine
    with pytest.raises(InputError, match="flows of clip .*a.mp4, not .*b.mp4"):
        FlowCache(CountingEstimator(), make_frame, cache_dir=tmp_path, clip=tmp_path / "b.mp4")


class ThreadRecordingEstimator(CountingEstimator):
    """A counting estimator that also records the thread of each call."""

    def __init__(self):
        super().__init__()
        self.threads = set()

    def __call__(self, a, b):
        import threading

        self.threads.add(threading.get_ident())
        return super().__call__(a, b)


def test_prefetch_gives_the_same_flows_each_pair_once_from_one_worker_thread():
    import threading

    est = ThreadRecordingEstimator()
    plain = FlowCache(CountingEstimator(), make_frame)
    with FlowCache(est, make_frame, prefetch=True) as cache:
        for t in range(N):
            pairs = [(t, s) for s in range(max(0, t - 3), min(N, t + 4)) if s != t]
            assert cache.prefetch(pairs + [(s, t) for t, s in pairs]) <= 6  # the rest is cached or pending
            for a, b in pairs:
                np.testing.assert_array_equal(cache.get(a, b), plain.get(a, b))
                assert cache.get(b, a).flags.c_contiguous
    assert max(est.calls.values()) == 1 and cache.stats.computed == len(est.calls)
    assert len(est.threads) == 1 and threading.get_ident() not in est.threads
    # after close: still usable, computed in the caller's thread, prefetch is a no-op
    assert cache.prefetch([(0, 5)]) == 0
    assert cache.get(0, 5)[0, 0, 0] == 5


def test_prefetch_skips_cached_pending_and_unreadable_pairs_and_is_off_by_default():
    def frame(t):
        if t >= N:
            raise IndexError(t)
        return make_frame(t)

    assert FlowCache(CountingEstimator(), frame).prefetch([(0, 1)]) == 0  # no worker
    est = CountingEstimator()
    cache = FlowCache(est, frame, prefetch=True)
    cache.get(0, 1)
    assert cache.prefetch([(0, 1), (1, 0), (1, 0), (N - 1, N), (2, 2)]) == 1  # only (1, 0)
    assert cache.get(1, 0)[0, 0, 0] == -1 and est.calls[(1, 0)] == 1
    cache.close()


def test_prefetch_errors_come_out_of_get():
    class Failing(CountingEstimator):
        def __call__(self, a, b):
            raise RuntimeError("no flow here")

    cache = FlowCache(Failing(), make_frame, prefetch=True)
    cache.prefetch([(0, 1)])
    with pytest.raises(RuntimeError, match="no flow here"):
        cache.get(0, 1)
    cache.close()
