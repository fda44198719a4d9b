"""A flow cache keyed by frame pair, so that no pair is computed twice in one run.

Pseudo-labelling needs flows t -> t+k for k in +-1..+-3 at every frame t (and the reverse
flows for the consistency check), so a sliding window over a clip asks for the same pair from
several frames. :class:`FlowCache` keeps recent flows and frames in bounded LRUs; with a
``cache_dir`` it also reads and writes ``.flo`` files in the ``cohesiv flow`` layout
(:mod:`cohesiv.flow.store`), so even an evicted pair is never computed again.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cohesiv.flow.consistency import forward_backward_valid
from cohesiv.flow.estimator import FlowEstimator
from cohesiv.flow.store import check_flow_config, flow_file, write_flow_config
from cohesiv.io.flo import read_flo, write_flo
from cohesiv.io.frames import FrameReader

#: Default number of flows kept in memory: a +-3 sliding window with backward flows needs
#: 7 frames x 6 pairs = 42. At 480x360 a flow is 1.4 MB (64 flows: 88 MB).
DEFAULT_MAX_FLOWS = 64
DEFAULT_MAX_FRAMES = 16


@dataclasses.dataclass
class CacheStats:
    """Counters of a :class:`FlowCache`.

    Attributes:
        hits: requests served from memory.
        misses: requests not in memory (served from disk or computed).
        disk_hits: misses served from ``cache_dir``.
        computed: flows computed by the estimator.
        recomputed: flows computed for a pair that had been computed before in this run
            (only possible without ``cache_dir``, when the LRU is too small for the access pattern).
        frame_reads: calls to ``get_frame``.
        seconds: wall seconds spent computing flows.
    """

    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    computed: int = 0
    recomputed: int = 0
    frame_reads: int = 0
    seconds: float = 0.0


class _LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def lookup(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


class FlowCache:
    """Flows between frames of one clip, each pair computed at most once.

    Args:
        estimator: the flow method (a :class:`FlowEstimator` or any callable
            ``(frame_a, frame_b) -> (2, H, W)`` with a ``config`` attribute when ``cache_dir`` is used).
        get_frame: ``t -> (H, W, 3)`` uint8 RGB frame t (e.g. ``FrameReader(path).frame``); frames
            are kept in a small LRU, so it is called about once per frame for a sliding window.
        max_flows: flows kept in memory (least recently used evicted first).
        max_frames: frames kept in memory.
        cache_dir: optional folder in the ``cohesiv flow`` layout: flows found there are read
            instead of computed, computed flows are written there (atomically).
        clip: the clip's path, recorded in (or checked against) ``cache_dir/flow.json``, so
            that flows of another clip are never read.
        pair_flow: instead of ``estimator``, a flow source that also wants the frame indices,
            ``pair_flow(frame_t, frame_s, t, s) -> (2, H, W)`` (e.g. the exact flow of a
            synthetic clip); ``estimator`` may then be None.
        prefetch: run the estimator in one worker thread, so that :meth:`prefetch` can start the
            flows of the next frames while the caller works on this one (both cores busy: OpenCV
            releases the GIL). Every flow is then computed in that thread; :meth:`close` (or a
            ``with`` block) stops it. The flows are the same as without it.

    Example:
        >>> cache = FlowCache(FlowEstimator(), reader.frame)     # doctest: +SKIP
        >>> fw = cache.get(10, 12)                               # (2, H, W) flow 10 -> 12
        >>> ok = cache.valid(10, 12)                             # (H, W) bool, uses 12 -> 10 too

    The returned arrays are shared with the cache and read-only; copy them to modify.
    """

    def __init__(
        self,
        estimator: FlowEstimator | Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
        get_frame: Callable[[int], np.ndarray],
        max_flows: int = DEFAULT_MAX_FLOWS,
        max_frames: int = DEFAULT_MAX_FRAMES,
        cache_dir: str | Path | None = None,
        clip: str | Path | None = None,
        pair_flow: Callable[[np.ndarray, np.ndarray, int, int], np.ndarray] | None = None,
        prefetch: bool = False,
    ) -> None:
        if estimator is None and pair_flow is None:
            raise ValueError("FlowCache needs an estimator or a pair_flow")
        if max_flows < 1 or max_frames < 2:
            raise ValueError(f"need max_flows >= 1 and max_frames >= 2, got {max_flows} and {max_frames}")
        self.estimator = estimator
        self.pair_flow = pair_flow
        self.get_frame = get_frame
        self.stats = CacheStats()
        self._flows = _LRU(max_flows)
        self._frames = _LRU(max_frames)
        self._done: set[tuple[int, int]] = set()
        self._pending: dict[tuple[int, int], Future] = {}
        # one worker: flows of the next frames are computed while the caller labels this one
        # (OpenCV's DIS releases the GIL), and the estimator is never called from two threads
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohesiv-flow") if prefetch else None
        )
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        if self.cache_dir is not None:
            config = getattr(estimator, "config", None)
            if config is None:
                raise ValueError("cache_dir needs an estimator with a .config (a FlowEstimator)")
            if not check_flow_config(self.cache_dir, config, clip):
                extra = {} if clip is None else {"clip": str(Path(clip).resolve())}
                write_flow_config(self.cache_dir, config, **extra)

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` through the frame LRU."""
        img = self._frames.lookup(t)
        if img is None:
            img = self.get_frame(t)
            self.stats.frame_reads += 1
            self._frames.put(t, img)
        return img

    def get(self, t: int, s: int) -> np.ndarray:
        """Flow from frame ``t`` to frame ``s`` (waits for it when it is being prefetched).

        Returns:
            ``(2, H, W)`` float32 (read-only, C-contiguous), channel 0 = dx, channel 1 = dy, t -> s.
        """
        key = (int(t), int(s))
        if key[0] == key[1]:
            raise ValueError(f"flow needs two different frames, got t = s = {t}")
        flow = self._flows.lookup(key)
        if flow is not None:
            self.stats.hits += 1
            return flow
        self.stats.misses += 1
        path = None if self.cache_dir is None else flow_file(self.cache_dir, *key)
        pending = self._pending.pop(key, None)
        if pending is None and path is not None and path.exists():
            flow = read_flo(path)
            self.stats.disk_hits += 1
        else:
            if pending is None:
                a, b = self.frame(key[0]), self.frame(key[1])
                if self._executor is None:
                    flow, seconds = self._compute(a, b, *key)
                else:  # the estimator is only ever called from the worker thread
                    flow, seconds = self._executor.submit(self._compute, a, b, *key).result()
            else:
                flow, seconds = pending.result()
            self.stats.seconds += seconds
            self.stats.computed += 1
            if key in self._done:
                self.stats.recomputed += 1
            self._done.add(key)
            if path is not None:
                write_flo(path, flow)
        flow.flags.writeable = False
        self._flows.put(key, flow)
        return flow

    def _compute(self, a: np.ndarray, b: np.ndarray, t: int, s: int) -> tuple[np.ndarray, float]:
        """``(flow t -> s, wall seconds)``; runs in the worker thread when prefetching."""
        start = time.perf_counter()
        if self.pair_flow is not None:
            flow = self.pair_flow(a, b, t, s)
        else:
            flow = self.estimator(a, b)
        # contiguous once here (DIS returns a channel-first view): every consumer (the
        # responsibility maps, the consistency check's remap) would otherwise copy it
        flow = np.ascontiguousarray(flow, dtype=np.float32)
        return flow, time.perf_counter() - start

    def prefetch(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Start computing the flows of ``pairs`` in the background thread (needs ``prefetch=True``).

        Pairs already in memory, on disk or pending are skipped, and so are pairs with a frame
        that ``get_frame`` cannot read (IndexError: past the end of a video). Frames are read
        here, in the caller's thread; only the estimator runs in the worker. :meth:`get` then
        waits for a pending pair instead of computing it.

        Returns:
            The number of pairs started (0 without ``prefetch=True``).
        """
        if self._executor is None:
            return 0
        started = 0
        for t, s in pairs:
            key = (int(t), int(s))
            if key[0] == key[1] or key in self._flows or key in self._pending:
                continue
            if self.cache_dir is not None and flow_file(self.cache_dir, *key).exists():
                continue
            try:
                a, b = self.frame(key[0]), self.frame(key[1])
            except IndexError:
                continue
            self._pending[key] = self._executor.submit(self._compute, a, b, *key)
            started += 1
        return started

    def close(self) -> None:
        """Stop the prefetch thread (pending pairs not yet started are dropped); the cache stays usable."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()

    def __enter__(self) -> FlowCache:
        """The cache itself (``with FlowCache(...) as cache``: the prefetch thread stops on exit)."""
        return self

    def __exit__(self, *exc) -> None:
        """Call :meth:`close`."""
        self.close()

    def valid(self, t: int, s: int, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
        """Forward-backward valid mask ``(H, W)`` bool of flow t -> s (uses flow s -> t too)."""
        return forward_backward_valid(self.get(t, s), self.get(s, t), alpha=alpha, beta=beta)

    def __len__(self) -> int:
        """Number of flows held in memory."""
        return len(self._flows)


class StreamingFrames:
    """``t -> frame t`` for a clip read in (mostly) increasing order, decoding each frame once.

    ``FrameReader.frame(t)`` of a video decodes from the start every time; for a sliding window
    (as :class:`FlowCache` asks) this keeps one decoder running forward and the last ``keep``
    frames. Asking for a frame behind the kept window restarts the decoder (counted in
    ``restarts``). Folder clips are read directly (random access is cheap there).

    Args:
        clip: a clip path or an open :class:`cohesiv.io.FrameReader`.
        keep: how many of the most recent frames to keep (>= the window width, e.g. 7 for +-3).

    Example:
        >>> frames = StreamingFrames("clip.mp4")                      # doctest: +SKIP
        >>> cache = FlowCache(FlowEstimator(), frames)               # doctest: +SKIP
    """

    def __init__(self, clip: str | Path | FrameReader, keep: int = 8) -> None:
        self.reader = clip if isinstance(clip, FrameReader) else FrameReader(clip)
        self.keep = max(int(keep), 1)
        self.restarts = 0
        self._iter: Iterator[np.ndarray] | None = None
        self._next = 0
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, t: int) -> np.ndarray:
        """Frame ``t``, ``(H, W, 3)`` uint8 RGB; IndexError past the end of the clip."""
        if t < 0:
            raise IndexError(f"{self.reader.path}: frame {t} out of range")
        if self.reader.is_folder:
            return self.reader.frame(t)
        if t in self._kept:
            return self._kept[t]
        if self._iter is None or t < self._next:
            if self._iter is not None:
                self.restarts += 1
            self._iter, self._next = iter(self.reader), 0
            self._kept.clear()
        for img in self._iter:
            i, self._next = self._next, self._next + 1
            self._kept[i] = img
            while len(self._kept) > self.keep:
                self._kept.popitem(last=False)
            if i == t:
                return img
        self._iter = None
        raise IndexError(f"{self.reader.path}: frame {t} out of range (clip has {self._next} frames)")
