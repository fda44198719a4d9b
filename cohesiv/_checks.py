"""Small input checks used at public boundaries (never ``assert`` for user input)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_shape(x: Any, spec: str, name: str = "input") -> dict[str, int]:
    """Check that ``x.shape`` matches a comma-separated spec and return the bound sizes.

    Each entry of ``spec`` is either an integer (the size must equal it) or a name (any
    size, but the same name must have the same size everywhere in the spec), e.g.
    ``check_shape(flow, "B,2,H,W", "flow")``. A leading ``*`` entry allows any number of
    leading dimensions.

    Args:
        x: an array or tensor (anything with ``.shape``).
        spec: the expected shape, e.g. ``"B,2,H,W"`` or ``"*,2"``.
        name: how to call ``x`` in the error message.

    Returns:
        The sizes bound to each named dimension, e.g. ``{"B": 1, "H": 64, "W": 64}``.

    Raises:
        ValueError: with the expected and the actual shape.
    """
    shape = tuple(getattr(x, "shape", ()))
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    star = bool(parts) and parts[0] == "*"
    if star:
        parts = parts[1:]
        dims = shape[len(shape) - len(parts) :] if len(shape) >= len(parts) else None
    else:
        dims = shape if len(shape) == len(parts) else None
    if dims is None:
        raise ValueError(
            f"{name} must have shape ({spec}), got {tuple(shape)} "
            f"({len(shape)} dimensions instead of {len(parts)}{' or more' if star else ''})"
        )
    bound: dict[str, int] = {}
    for p, d in zip(parts, dims):
        if p.lstrip("-").isdigit():
            if int(p) != d:
                raise ValueError(f"{name} must have shape ({spec}), got {tuple(shape)}")
        elif p in bound and bound[p] != d:
            raise ValueError(
                f"{name} must have shape ({spec}), got {tuple(shape)}: "
                f"dimension {p} is {bound[p]} in one place and {d} in another"
            )
        else:
            bound[p] = int(d)
    return bound


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (e.g. ``"320x240"``) into ``(W, H)``; raise ValueError when malformed."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like WxH, e.g. 320x240; got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return w, h


def parse_int_list(text: str | Sequence[int]) -> list[int]:
    """Parse ``"1,2,3"`` into ``[1, 2, 3]`` (a list of ints is returned as is)."""
    if not isinstance(text, str):
        return [int(v) for v in text]
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, e.g. 1,2,3; got {text!r}") from None
