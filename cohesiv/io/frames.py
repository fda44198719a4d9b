"""Frames from a clip: a video file (PyAV), an animated GIF, or a folder of images.

Frames are streamed one at a time; a whole video is never held in memory.
Every frame is ``(H, W, 3)`` uint8 RGB. A clip whose frames change size is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.images import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


def _av():
    import av  # imported lazily: PyAV is only needed for video files

    # No Python logging callback (it can deadlock with threaded decoding: PyAV issues #751, #909);
    # FFmpeg's own messages are silenced; errors still raise.
    av.logging.set_level(None)
    av.logging.set_libav_level(av.logging.PANIC)
    return av


class FrameReader:
    """Stream the frames of a clip.

    A clip is a video file (mp4/avi/mov/mkv/webm/gif) or a folder of images sorted by name.
    For a folder that holds a ``frames/`` subfolder (a clip written by ``cohesiv synth``),
    the images in ``frames/`` are the clip.

    Example:
        >>> reader = FrameReader("clip.mp4")          # doctest: +SKIP
        >>> for t, frame in enumerate(reader):        # frame: (H, W, 3) uint8 RGB
        ...     pass

    Attributes:
        path: the clip path as given.
        size: ``(W, H)`` of the first frame.
    """

    def __init__(self, path: str | Path) -> None:
        """Open the clip and read its first frame's size; raise InputError on bad input."""
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such video file or frame folder")
        self._files: list[Path] | None = None
        if self.path.is_dir():
            folder = self.path / "frames" if (self.path / "frames").is_dir() else self.path
            self._files = sorted(
                p
                for p in folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not self._files:
                raise InputError(self.path, "folder holds no images (.png/.jpg/...)")
            first = read_image(self._files[0])
            self.size = (first.shape[1], first.shape[0])
            self._count = len(self._files)
        else:
            if self.path.suffix.lower() not in VIDEO_SUFFIXES:
                raise InputError(
                    self.path,
                    f"unsupported clip type {self.path.suffix!r} (expected a video "
                    f"{', '.join(VIDEO_SUFFIXES)} or a folder of images)",
                )
            self._count = None
            self.size = self._probe_video()

    def _open_container(self):
        av = _av()
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise InputError(self.path, f"cannot open video ({_short(e)})") from None
        if not container.streams.video:
            container.close()
            raise InputError(self.path, "file has no video stream")
        return container

    def _probe_video(self) -> tuple[int, int]:
        for frame in self._iter_video():
            return frame.shape[1], frame.shape[0]
        raise InputError(self.path, "video has no frames (empty or corrupt)")

    def _iter_video(self) -> Iterator[np.ndarray]:
        av = _av()
        container = self._open_container()
        try:
            stream = container.streams.video[0]
            size = None
            for i, frame in enumerate(container.decode(stream)):
                img = frame.to_ndarray(format="rgb24")
                if size is None:
                    size = img.shape
                    if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:
                        raise InputError(self.path, f"frames too large ({img.shape[1]}x{img.shape[0]})")
                elif img.shape != size:
                    raise InputError(
                        self.path,
                        f"frame {i} is {img.shape[1]}x{img.shape[0]} but earlier frames are "
                        f"{size[1]}x{size[0]}: frames must not change size",
                    )
                yield img
        except av.error.FFmpegError as e:
            raise InputError(self.path, f"video is corrupt or truncated ({_short(e)})") from None
        finally:
            container.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield frames in order, each ``(H, W, 3)`` uint8 RGB."""
        if self._files is None:
            yield from self._iter_video()
            return
        w, h = self.size
        for i, f in enumerate(self._files):
            img = read_image(f)
            if img.shape[:2] != (h, w):
                raise InputError(
                    f,
                    f"frame {i} is {img.shape[1]}x{img.shape[0]} but the clip's first frame is "
                    f"{w}x{h}: frames must not change size",
                )
            yield img

    def __len__(self) -> int:
        """Number of frames (for a video, counted by demuxing once, without decoding)."""
        if self._count is None:
            container = self._open_container()
            try:
                stream = container.streams.video[0]
                n = sum(1 for p in container.demux(stream) if p.size > 0)
            except _av().error.FFmpegError as e:
                raise InputError(self.path, f"video is corrupt ({_short(e)})") from None
            finally:
                container.close()
            self._count = n
        return self._count

    @property
    def is_folder(self) -> bool:
        """True when the clip is a folder of images (random access is cheap)."""
        return self._files is not None

    @property
    def files(self) -> list[Path]:
        """The image files of a folder clip (empty for a video)."""
        return list(self._files or [])

    def frame(self, index: int) -> np.ndarray:
        """Return frame ``index``: cheap for folders, a sequential decode for videos."""
        if self._files is not None:
            if not 0 <= index < len(self._files):
                raise IndexError(f"{self.path}: frame {index} out of range 0..{len(self._files) - 1}")
            img = read_image(self._files[index])
            w, h = self.size
            if img.shape[:2] != (h, w):
                raise InputError(
                    self._files[index],
                    f"frame {index} is {img.shape[1]}x{img.shape[0]} but the clip's first frame is "
                    f"{w}x{h}: frames must not change size",
                )
            return img
        for i, img in enumerate(self):
            if i == index:
                return img
        raise IndexError(f"{self.path}: frame {index} out of range (clip has {i + 1} frames)")


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a clip one at a time, each ``(H, W, 3)`` uint8 RGB."""
    return iter(FrameReader(path))


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]
