"""Still images: safe reading (decompression bombs refused) and atomic PNG writing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from cohesiv.errors import InputError
from cohesiv.io.atomic import atomic_path

#: Largest image (in pixels) that cohesiv will decode: 16k x 8k. Larger files are refused
#: before decoding, so a decompression bomb cannot exhaust memory.
MAX_IMAGE_PIXELS = 1 << 27

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def open_image(path: str | Path) -> Image.Image:
    """Open an image file with PIL, refusing decompression bombs; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            try:
                img = Image.open(path)
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InputError(path, f"image too large ({w}x{h} pixels); refused")
                img.load()
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(path, "image too large (possible decompression bomb); refused") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(path, f"cannot read image ({e})") from None
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey and RGBA are converted)."""
    img = open_image(path)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def write_image(path: str | Path, image: np.ndarray, *, compress_level: int = 6) -> None:
    """Write ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 to ``path`` (format from suffix), atomically.

    ``compress_level`` (PNG only, 0-9): 1 is 3-5x faster than the default 6 for slightly larger files.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    with atomic_path(path) as tmp:
        fmt = _pil_format(Path(path))
        extra = {"compress_level": compress_level} if fmt == "PNG" else {}
        Image.fromarray(image).save(tmp, format=fmt, **extra)


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        ext, "WEBP" if ext == ".webp" else "PNG"
    )
