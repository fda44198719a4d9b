"""File I/O: clips (streamed frames), ``.flo`` flow, EgoHOS label PNGs, hand tracks."""

from cohesiv.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from cohesiv.io.flo import read_flo, unknown_flow_mask, write_flo
from cohesiv.io.frames import FrameReader, iter_frames
from cohesiv.io.hands import Hand, HandTracks, check_tracks_match_clip, parse_hands, read_hands, write_hands
from cohesiv.io.images import read_image, write_image
from cohesiv.io.labels import read_label, task_labels, write_label

__all__ = [
    "FrameReader",
    "Hand",
    "HandTracks",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_tracks_match_clip",
    "iter_frames",
    "parse_hands",
    "read_flo",
    "read_hands",
    "read_image",
    "read_label",
    "task_labels",
    "unknown_flow_mask",
    "write_flo",
    "write_hands",
    "write_image",
    "write_label",
]
