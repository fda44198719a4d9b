"""Ground truth in other formats -> EgoHOS label PNGs, in one place.

``cohesiv eval`` scores EgoHOS labels (``labels/*.png`` beside ``frames/``). Instance annotations
(COCO-RLE files, :mod:`cohesiv.io.coco`; VISOR-style sparse JSON, :mod:`cohesiv.io.visor`) are read
as :class:`GTHand` lists per image, and :func:`label_from_hands` turns them into the label image:
1 left hand, 2 right hand, 3 / 4 the object a left / right hand holds, 5 an object held by both
sides, hands over objects (:func:`cohesiv.io.labels.compose_label`, the same composition as
predictions). :func:`labeled_clip_from_gt` writes a labeled-clip folder that the evaluation driver
reads unchanged.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.labels import compose_label, write_label


@dataclass
class GTHand:
    """One annotated hand of one image.

    Attributes:
        side: "left" or "right".
        hand: ``(H, W)`` {0, 1} hand mask.
        object: ``(H, W)`` {0, 1} mask of the object it holds (in contact with), or None.
        id: the annotation's id or hand id (for messages).
    """

    side: str
    hand: np.ndarray
    object: np.ndarray | None = None
    id: str = ""


def label_from_hands(hands: list[GTHand], shape: tuple[int, int]) -> np.ndarray:
    """EgoHOS label ``(H, W)`` uint8 of annotated hands and their objects (see the module docstring).

    Args:
        hands: the hands of one image.
        shape: ``(H, W)``.

    Raises:
        ValueError: a mask of another shape, or a side other than left/right.
    """
    h, w = shape
    empty = np.zeros((0, h, w), np.uint8)
    for hd in hands:
        if hd.side not in ("left", "right"):
            raise ValueError(f"hand {hd.id!r}: side must be left or right, got {hd.side!r}")
        for m in (hd.hand, hd.object):
            if m is not None and m.shape != (h, w):
                raise ValueError(f"hand {hd.id!r}: mask is {m.shape}, the image is {(h, w)}")
    hm = np.stack([hd.hand for hd in hands]).astype(np.uint8) if hands else empty
    om = (
        np.stack([np.zeros((h, w), np.uint8) if hd.object is None else hd.object for hd in hands]).astype(
            np.uint8
        )
        if hands
        else empty
    )
    return compose_label(hm, om, [hd.side for hd in hands])


def read_gt_file(
    path: str | Path, image_size: tuple[int, int] | None = None
) -> Iterator[tuple[str, tuple[int, int], list[GTHand]]]:
    """Read a ground-truth file of either format, told apart by its content.

    Args:
        path: a COCO instance file (``images`` / ``annotations``) or a VISOR-style sparse JSON
            (``video_annotations``).
        image_size: ``(H, W)`` of the annotated images, needed by VISOR files (they carry no size).

    Yields:
        ``(image name, (H, W), hands)`` per annotated image.
    """
    from cohesiv.io.coco import _load_json, read_coco_instances
    from cohesiv.io.visor import read_visor

    doc = _load_json(path)
    if isinstance(doc, dict) and "video_annotations" in doc:
        if image_size is None:
            raise InputError(path, "a VISOR file carries no image size: give the frames' size")
        yield from read_visor(path, image_size, doc)
    elif isinstance(doc, dict) and "images" in doc:
        yield from read_coco_instances(path, doc)
    else:
        raise InputError(
            path, "unknown ground-truth format: expected a COCO instance file or VISOR sparse JSON"
        )


def _frame_dir(clip: Path) -> Path:
    return clip / "frames" if (clip / "frames").is_dir() else clip


def labeled_clip_from_gt(gt_file: str | Path, clip: str | Path, out_dir: str | Path) -> tuple[Path, int]:
    """Make a labeled-clip folder (``frames/``, ``labels/``, ``hands.json``) from a frame folder and a GT file.

    ``frames`` (and, for a clip folder with ``frames/``, its other entries but ``labels/``: ``hands.json``,
    exact flow, ...) are symbolic links to the clip's; the
    labels are written as EgoHOS PNGs named by the frame they label. An image of the GT file is
    matched to the frame file with the same stem, else (a trailing number in its name) to the frame
    of that index.

    Args:
        gt_file: COCO-RLE or VISOR JSON.
        clip: a folder of frames (or a folder with ``frames/``).
        out_dir: the folder to create.

    Returns:
        ``(out_dir, number of label files)``.

    Raises:
        InputError: the clip is not a frame folder, or an annotated image matches no frame, or its
        size differs from the frame's.
    """
    from cohesiv.io import FrameReader

    clip, out_dir = Path(clip), Path(out_dir)
    if not clip.is_dir():
        raise InputError(
            clip, "ground truth from --gt needs the clip as a folder of frames (extract a video first)"
        )
    reader = FrameReader(clip)
    stems = {p.stem: p for p in reader.files}
    by_index = list(reader.files)
    w, h = reader.size
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    link = out_dir / "frames"
    if not link.exists():
        os.symlink(_frame_dir(clip).resolve(), link, target_is_directory=True)
    if (clip / "frames").is_dir():  # a clip folder: its hands.json, flow/, ... come along (not labels/)
        for p in clip.iterdir():
            if p.name not in ("frames", "labels") and not (out_dir / p.name).exists():
                os.symlink(p.resolve(), out_dir / p.name, target_is_directory=p.is_dir())
    n = 0
    for name, shape, hands in read_gt_file(gt_file, (h, w)):
        stem = Path(name).stem
        frame = stems.get(stem)
        if frame is None:
            m = re.search(r"(\d+)$", stem)
            if m is None or int(m.group(1)) >= len(by_index):
                raise InputError(
                    gt_file, f"annotated image {name!r} matches no frame of {clip} (by name or index)"
                )
            frame = by_index[int(m.group(1))]
        if tuple(shape) != (h, w):
            raise InputError(
                gt_file, f"annotated image {name!r} is {shape[1]}x{shape[0]} but the frames are {w}x{h}"
            )
        write_label(out_dir / "labels" / f"{frame.stem}.png", label_from_hands(hands, (h, w)))
        n += 1
    if n == 0:
        raise InputError(gt_file, "holds no annotated image")
    (out_dir / "source.json").write_text(json.dumps({"gt": str(gt_file), "clip": str(clip)}))
    return out_dir, n


def labeled_clips_from_gt(gt_files: list[str], clips: list[str], tmp: str | Path) -> list[str]:
    """:func:`labeled_clip_from_gt` for each ``(gt file, clip)`` pair, into ``tmp/clipN``; return the folders.

    Raises:
        InputError: the numbers of GT files and clips differ (or any error of :func:`labeled_clip_from_gt`).
    """
    if len(gt_files) != len(clips):
        raise InputError(
            None, f"--gt gives {len(gt_files)} files for {len(clips)} --data clips: give one per clip"
        )
    return [
        str(labeled_clip_from_gt(g, c, Path(tmp) / f"clip{i}")[0])
        for i, (g, c) in enumerate(zip(gt_files, clips))
    ]
