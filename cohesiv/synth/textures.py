"""Procedural textures for synthetic clips: multi-scale noise, colour blends, wood, tiles, skin.

Every function is pure: it takes a ``numpy.random.Generator`` and sizes and returns arrays,
so a clip is a deterministic function of its seed. Textures are ``(H, W, 3)`` float32 RGB in
0..255. Their finest detail has a scale of about 3 pixels, so that bilinear resampling (rendering
and warping back with the ground-truth flow) loses little, and optical flow is defined
everywhere (no flat regions).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Skin tones (RGB) from light to dark; a hand picks one and jitters it.
SKIN_TONES = np.array(
    [
        (241, 204, 178),
        (227, 180, 150),
        (214, 160, 126),
        (196, 140, 104),
        (170, 112, 80),
        (141, 90, 62),
        (110, 70, 50),
        (82, 54, 40),
    ],
    np.float32,
)


def fractal_noise(
    rng: np.random.Generator,
    h: int,
    w: int,
    scales: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0, 48.0),
    exponent: float = 0.6,
) -> np.ndarray:
    """Return multi-scale value noise ``(h, w)`` float32 with mean 0 and standard deviation 1.

    Each octave is a grid of Gaussian random values, one every ``scale`` pixels, upsampled with
    bicubic interpolation; octave ``s`` is weighted by ``s ** exponent`` (a 1/f-like spectrum).

    Args:
        rng: random generator.
        h: height in pixels.
        w: width in pixels.
        scales: octave periods in pixels.
        exponent: weight exponent (larger: smoother, more low-frequency energy).
    """
    out = np.zeros((h, w), np.float32)
    for s in scales:
        gh, gw = int(np.ceil(h / s)) + 3, int(np.ceil(w / s)) + 3
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        big = cv2.resize(grid, (int(round(gw * s)), int(round(gh * s))), interpolation=cv2.INTER_CUBIC)
        oy, ox = (
            int(rng.integers(0, max(1, big.shape[0] - h))),
            int(rng.integers(0, max(1, big.shape[1] - w))),
        )
        out += (s**exponent) * big[oy : oy + h, ox : ox + w]
    out -= out.mean()
    out /= out.std() + 1e-6
    return out


def random_colour(
    rng: np.random.Generator, sat: tuple[float, float] = (0.3, 0.9), val=(0.3, 0.95)
) -> np.ndarray:
    """Return a random RGB colour ``(3,)`` float32 in 0..255 from HSV ranges."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def blend_texture(
    rng: np.random.Generator, h: int, w: int, colours: np.ndarray, contrast: float = 0.2
) -> np.ndarray:
    """Return a blotchy texture ``(h, w, 3)`` float32: colours mixed by noise, with luminance noise.

    Args:
        rng: random generator.
        h: height in pixels.
        w: width in pixels.
        colours: ``(K, 3)`` RGB colours (K >= 1) mixed by smooth noise.
        contrast: amplitude of the multiplicative luminance noise.
    """
    colours = np.asarray(colours, np.float32).reshape(-1, 3)
    tex = np.broadcast_to(colours[0], (h, w, 3)).astype(np.float32)
    for c in colours[1:]:
        m = 1.0 / (1.0 + np.exp(-2.5 * fractal_noise(rng, h, w, exponent=1.2)))
        tex = tex * (1 - m[..., None]) + c * m[..., None]
    lum = 1.0 + contrast * fractal_noise(rng, h, w, exponent=0.5)
    return np.clip(tex * lum[..., None], 0, 255)


def wood_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Return a wood-grain-like texture ``(h, w, 3)``: stretched noise rings plus fine noise."""
    base = random_colour(rng, sat=(0.35, 0.7), val=(0.45, 0.85))
    base[:] = np.array([base[0], base[1] * 0.8, base[2] * 0.6]) * 0.5 + np.array([150, 105, 70]) * 0.5
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    coord = xx * np.cos(ang) + yy * np.sin(ang)
    warp = fractal_noise(rng, h, w, scales=(16.0, 32.0, 64.0), exponent=1.0)
    period = rng.uniform(9, 18)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * coord / period + 3.0 * warp)
    lum = 0.8 + 0.25 * rings + 0.12 * fractal_noise(rng, h, w, exponent=0.4)
    return np.clip(base * lum[..., None], 0, 255)


def tile_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Return a tiled-surface texture ``(h, w, 3)``: tiles with grout lines, each tile noisy."""
    c1, c2 = random_colour(rng, sat=(0.05, 0.4), val=(0.5, 0.95)), random_colour(rng, sat=(0.05, 0.3))
    tex = blend_texture(rng, h, w, np.stack([c1, c1 * rng.uniform(0.85, 1.1)]), contrast=0.15)
    size = int(rng.integers(14, 40))
    grout = np.zeros((h, w), np.uint8)
    for y in range(int(rng.integers(0, size)), h, size):
        cv2.line(grout, (0, y), (w - 1, y), 255, 2, cv2.LINE_AA)
    for x in range(int(rng.integers(0, size)), w, size):
        cv2.line(grout, (x, 0), (x, h - 1), 255, 2, cv2.LINE_AA)
    g = cv2.GaussianBlur(grout, (0, 0), 1.0).astype(np.float32)[..., None] / 255.0
    return tex * (1 - g) + c2 * 0.6 * g


def background_texture(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
    """Return a table/counter-like background ``(h, w, 3)`` float32 and the name of its style."""
    style = ("blotchy", "wood", "tiles")[int(rng.integers(0, 3))]
    if style == "wood":
        tex = wood_texture(rng, h, w)
    elif style == "tiles":
        tex = tile_texture(rng, h, w)
    else:
        k = int(rng.integers(2, 4))
        tex = blend_texture(rng, h, w, np.stack([random_colour(rng) for _ in range(k)]), contrast=0.25)
    return tex.astype(np.float32), style


def object_texture(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a colourful object texture ``(h, w, 3)`` float32 and its main colour ``(3,)``.

    Patterns: plain blotchy, stripes or a checkerboard, always with multi-scale luminance noise.
    """
    main = random_colour(rng, sat=(0.5, 1.0), val=(0.45, 1.0))
    second = random_colour(rng, sat=(0.3, 1.0), val=(0.3, 1.0))
    tex = blend_texture(rng, h, w, np.stack([main, main * rng.uniform(0.7, 1.0)]), contrast=0.15)
    pattern = int(rng.integers(0, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == 1:  # stripes
        period = rng.uniform(9, 18)
        ang = rng.uniform(0, np.pi)
        s = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
        m = np.clip(0.5 + 0.8 * s, 0, 1)[..., None]
        tex = tex * (1 - m) + second * m
    elif pattern == 2:  # checkerboard, anti-aliased by a blur
        cell = rng.uniform(7, 14)
        m = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
        m = cv2.GaussianBlur(m, (0, 0), 1.0)[..., None]
        tex = tex * (1 - m) + second * m
    return np.clip(tex, 0, 255).astype(np.float32), main


def skin_texture(rng: np.random.Generator, h: int, w: int, tone: np.ndarray) -> np.ndarray:
    """Return skin ``(h, w, 3)`` float32 of colour ``tone`` with soft blotches and fine pores."""
    tone = np.asarray(tone, np.float32)
    redder = tone * np.array([1.05, 0.9, 0.88], np.float32)
    tex = blend_texture(rng, h, w, np.stack([tone, redder]), contrast=0.08)
    fine = fractal_noise(rng, h, w, scales=(3.0, 5.0), exponent=0.3)
    return np.clip(tex * (1 + 0.06 * fine[..., None]), 0, 255).astype(np.float32)
