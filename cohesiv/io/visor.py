"""VISOR-style sparse annotations (EPIC-KITCHENS VISOR JSON) as ground truth.

Layout read (VISOR's sparse ``*.json``)::

    {"video_annotations": [
        {"image": {"name": "P01_01_frame_0000000140.jpg", ...},
         "annotations": [
            {"id": "a1", "name": "left hand", "class_id": 300, "segments": [[[x, y], ...], ...],
             "in_contact_object": "b7" | "hand-not-in-contact" | "none-of-the-above" | "inconclusive"},
            {"id": "b7", "name": "knife", "class_id": 12, "segments": [...]}, ...]}]}

Hands are class 300 (left) and 301 (right); a hand's ``in_contact_object`` names the ``id`` of
the object it holds, anything else means it holds nothing. Segments are polygons in pixels of the
annotated image (VISOR's coordinates, corner origin), rasterised with pycocotools. The file has no
image size: the caller passes the frames' size. Other annotations (objects no hand holds, gloves)
are background for cohesiv's tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.groundtruth import GTHand

LEFT_HAND_CLASS, RIGHT_HAND_CLASS = 300, 301
_SIDE = {LEFT_HAND_CLASS: "left", RIGHT_HAND_CLASS: "right"}


def polygons_to_mask(segments: list, height: int, width: int) -> np.ndarray:
    """Rasterise VISOR ``segments`` (a list of polygons, each ``[[x, y], ...]``) to ``(H, W)`` uint8 {0, 1}."""
    from cohesiv.io.coco import decode_segmentation

    flat = [[float(v) for pt in poly for v in pt[:2]] for poly in segments if len(poly) >= 3]
    return decode_segmentation(flat, height, width)


def read_visor(
    path: str | Path, image_size: tuple[int, int], doc: Mapping | None = None
) -> Iterator[tuple[str, tuple[int, int], list[GTHand]]]:
    """Read a VISOR sparse JSON file as ground truth.

    Args:
        path: the file (named in errors).
        image_size: ``(H, W)`` of the annotated images (the clip's frames).
        doc: the parsed document, when already loaded.

    Yields:
        ``(image name, (H, W), hands)`` per annotated image.

    Raises:
        InputError: a malformed entry, or a contact id naming no annotation.
    """
    from cohesiv.io.coco import _load_json

    doc = _load_json(path) if doc is None else doc
    entries = doc.get("video_annotations") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list):
        raise InputError(path, "not a VISOR file (no 'video_annotations' list)")
    for e in entries:
        try:
            name = str(e["image"]["name"])
            anns = list(e.get("annotations", []))
        except (KeyError, TypeError):
            raise InputError(path, "every video_annotations entry needs image.name and annotations") from None
        h, w = image_size
        by_id = {str(a.get("id")): a for a in anns}
        hands = []
        for a in anns:
            side = _SIDE.get(a.get("class_id"))
            if side is None:
                continue
            try:
                hand = polygons_to_mask(a.get("segments", []), h, w)
            except (TypeError, ValueError) as err:
                raise InputError(
                    path, f"image {name!r}, hand {a.get('id')!r}: bad segments ({err})"
                ) from None
            obj = None
            contact = a.get("in_contact_object")
            if isinstance(contact, str) and contact in by_id:
                obj = polygons_to_mask(by_id[contact].get("segments", []), h, w)
            elif isinstance(contact, str) and contact not in (
                "hand-not-in-contact",
                "none-of-the-above",
                "inconclusive",
                "",
            ):
                raise InputError(
                    path,
                    f"image {name!r}, hand {a.get('id')!r}: in_contact_object {contact!r} names no annotation",
                )
            hands.append(GTHand(side=side, hand=hand, object=obj, id=str(a.get("id"))))
        yield name, (h, w), hands
