import cv2
import numpy as np


def textured(h: int = 120, w: int = 160, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """A smooth random texture, (h, w, 3) uint8 RGB, full contrast: DIS has something to track."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image moved by (dx, dy): out(x + dx, y + dy) = img(x, y) (edges reflected)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def epe(flow: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = np.sqrt(((np.asarray(flow) - gt) ** 2).sum(0))
    return float(err[mask].mean() if mask is not None else err.mean())
