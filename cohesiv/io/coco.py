"""COCO-style instance JSON with RLE masks (pycocotools): cohesiv's machine-readable predictions.

One file per clip (or image set)::

    {"info": {...}, "images": [{"id", "file_name", "frame_index", "width", "height"}],
     "categories": [{"id": 1, "name": "left_hand"}, {"id": 2, "name": "right_hand"}, {"id": 3, "name": "object"}],
     "annotations": [{"id", "image_id", "category_id", "segmentation": {"size": [H, W], "counts": str},
                      "area", "bbox": [x, y, w, h], "iscrowd": 0, "hand_id", "side", "score",
                      "held_object_probability", "holds_object", "query": [x, y],
                      "hand_annotation_id" (objects only)}]}

One annotation per hand and one per held object. A hand annotation carries the held-object decision
(``holds_object``) and its probability (``held_object_probability``; null when the run has no
calibrated held-object model); an object annotation carries the same, plus ``hand_annotation_id``,
the ``id`` of its hand's annotation, and ``hand_id``. Every number is a JSON number. The masks are
those of the clip's EgoHOS label PNG: decoding the hand annotations of a side gives its hand label,
the object annotations of a side give its object labels (with 5 where both sides' objects meet).

Reading (ground truth for ``cohesiv eval``): :func:`read_coco_instances` takes files in this layout,
and COCO instance files in general, with categories named ``left_hand`` / ``right_hand`` (or "left
hand" / "right hand") and ``object``, segmentations as RLE or polygons, and an object tied to its
hand by ``hand_annotation_id`` (else by ``hand_id`` or ``side`` in the same image).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from cohesiv.errors import InputError
from cohesiv.io.atomic import atomic_path
from cohesiv.io.groundtruth import GTHand

CATEGORIES = (
    {"id": 1, "name": "left_hand", "supercategory": "hand"},
    {"id": 2, "name": "right_hand", "supercategory": "hand"},
    {"id": 3, "name": "object", "supercategory": "object"},
)
HAND_CATEGORY = {"left": 1, "right": 2}
OBJECT_CATEGORY = 3
_CATEGORY_NAMES = {"left_hand": "left", "left hand": "left", "right_hand": "right", "right hand": "right"}


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of an ``(H, W)`` {0, 1} mask: ``{"size": [H, W], "counts": str}`` (pycocotools)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation (compressed or plain RLE, or polygons) to an ``(H, W)`` uint8 mask.

    Raises:
        ValueError: an unknown form, or an RLE of another size.
    """
    if isinstance(seg, Mapping):
        size = [int(v) for v in seg.get("size", ())]
        if size != [height, width]:
            raise ValueError(f"RLE size {size} is not the image's [{height}, {width}]")
        rle = dict(seg)
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, height, width)
        elif isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
        return _decode(rle)
    if isinstance(seg, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polys = [list(map(float, p)) for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), np.uint8)
        rles = mask_utils.frPyObjects(polys, height, width)
        return _decode(mask_utils.merge(rles))
    raise ValueError(f"unknown segmentation of type {type(seg).__name__}")


def _decode(rle: dict) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools 2.0 on NumPy 2: a DeprecationWarning about copy=False
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(np.uint8)


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def hand_annotations(
    image_id: int,
    first_id: int,
    label_hands: np.ndarray,
    label_objects: np.ndarray,
    *,
    hand_ids: Sequence[str],
    sides: Sequence[str],
    scores: Sequence[float],
    held_probability: Sequence[float | None],
    holds: Sequence[bool],
    queries: np.ndarray,
) -> list[dict]:
    """The annotations of one image: one per hand, then one per held object.

    Args:
        image_id: the image's ``id``.
        first_id: ``id`` of the first annotation (then consecutive).
        label_hands: ``(K, H, W)`` {0, 1} hand masks as drawn in the label (a pixel in one hand only).
        label_objects: ``(K, H, W)`` {0, 1} object masks as drawn in the label (not under any hand).
        hand_ids: K hand ids (stable names such as "left", or "hand0").
        sides: K sides "left"/"right".
        scores: K confidences in [0, 1] (mean score map over the hand).
        held_probability: K probabilities that the hand holds an object, or None (uncalibrated).
        holds: K held-object decisions; a hand that holds nothing gets no object annotation.
        queries: ``(K, 2)`` query points ``(x, y)``.

    Returns:
        Annotation dicts (see the module docstring).
    """
    out: list[dict] = []
    commons = []
    for i, side in enumerate(sides):
        common = {
            "image_id": int(image_id),
            "iscrowd": 0,
            "hand_id": str(hand_ids[i]),
            "side": side,
            "held_object_probability": _num(held_probability[i]),
            "holds_object": bool(holds[i]),
            "query": [float(queries[i][0]), float(queries[i][1])],
        }
        commons.append(common)
        m = label_hands[i]
        out.append(
            {
                "id": first_id + i,
                "category_id": HAND_CATEGORY[side],
                "segmentation": encode_mask(m),
                "area": float(np.count_nonzero(m)),
                "bbox": _box(m),
                "score": _num(scores[i]),
                **common,
            }
        )
    for i, common in enumerate(commons):
        m = label_objects[i]
        if not holds[i] or not m.any():
            continue
        p = held_probability[i]
        out.append(
            {
                "id": first_id + len(out),
                "category_id": OBJECT_CATEGORY,
                "segmentation": encode_mask(m),
                "area": float(np.count_nonzero(m)),
                "bbox": _box(m),
                "score": _num(p) if p is not None else _num(scores[i]),
                "hand_annotation_id": first_id + i,
                **common,
            }
        )
    return out


def write_coco(
    path: str | Path, info: Mapping[str, Any], images: Iterable[dict], annotations: Iterable[dict]
) -> None:
    """Write a COCO JSON file atomically, streaming ``images`` and ``annotations`` (never all in memory).

    Args:
        path: the file.
        info: the ``info`` object (JSON-able).
        images: image dicts (``id``, ``file_name``, ``width``, ``height``, ...).
        annotations: annotation dicts.
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write('{"info": ' + json.dumps(info) + ',\n "categories": ' + json.dumps(list(CATEGORIES)))
        for key, items in (("images", images), ("annotations", annotations)):
            f.write(f',\n "{key}": [')
            for n, item in enumerate(items):
                f.write(("\n  " if n == 0 else ",\n  ") + json.dumps(item, allow_nan=False))
            f.write("\n ]")
        f.write("\n}\n")


def _load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such annotation file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read JSON ({e})") from None


def read_coco_instances(
    path: str | Path, doc: Mapping | None = None
) -> Iterator[tuple[str, tuple[int, int], list[GTHand]]]:
    """Read a COCO instance file as ground truth: per image, its hands and the objects they hold.

    Args:
        path: the JSON file (names it in errors).
        doc: the parsed document, when already loaded.

    Yields:
        ``(file_name, (H, W), hands)`` per image, in file order; objects whose hand cannot be found
        are an error (naming the annotation).

    Raises:
        InputError: not a COCO file, unknown category, or a malformed annotation.
    """
    doc = _load_json(path) if doc is None else doc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("images"), list):
        raise InputError(path, "not a COCO instance file (no 'images' list)")
    cats = {}
    for c in doc.get("categories", []):
        name = str(c.get("name", "")).lower()
        cats[c.get("id")] = _CATEGORY_NAMES.get(name, "object" if name == "object" else None)
    by_image: dict[Any, list[dict]] = {}
    for a in doc.get("annotations", []):
        by_image.setdefault(a.get("image_id"), []).append(a)
    for im in doc["images"]:
        try:
            h, w, name = int(im["height"]), int(im["width"]), str(im["file_name"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                path, f"image entry {im.get('id')!r} needs file_name, width and height"
            ) from None
        hands: dict[Any, GTHand] = {}
        objects = []
        for a in by_image.get(im.get("id"), []):
            kind = cats.get(a.get("category_id"))
            if kind is None:
                continue  # other categories (e.g. second-order objects) are background
            try:
                m = decode_segmentation(a["segmentation"], h, w)
            except (KeyError, ValueError, TypeError) as e:
                raise InputError(path, f"annotation {a.get('id')!r}: bad segmentation ({e})") from None
            if kind == "object":
                objects.append((a, m))
            else:
                hands[a.get("id")] = GTHand(
                    side=kind, hand=m, object=None, id=str(a.get("hand_id", a.get("id")))
                )
        for a, m in objects:
            owner = hands.get(a.get("hand_annotation_id"))
            if owner is None:
                cands = [
                    hd for hd in hands.values() if a.get("hand_id") is not None and hd.id == str(a["hand_id"])
                ]
                cands = cands or [
                    hd for hd in hands.values() if a.get("side") is not None and hd.side == a["side"]
                ]
                owner = cands[0] if cands else None
            if owner is None:
                raise InputError(path, f"object annotation {a.get('id')!r} names no hand of image {name!r}")
            owner.object = m if owner.object is None else (owner.object | m)
        yield name, (h, w), list(hands.values())
