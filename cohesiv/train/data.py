"""Pseudo-label datasets for training: reading, augmentation, the typed batch and deterministic order.

A pseudo-label dataset is a folder written by ``cohesiv pseudolabel`` (docs/INTERFACES.md)::

    manifest.jsonl      one JSON line per sample: id, clip, frame, image, sample, size [W, H],
                        hands [{id, side, query [x, y], points, stop_at_wrist (optional)}]
    images/<id>.png     the frame, (H, W, 3) uint8 RGB
    samples/<id>.npz    responsibility float16 (N+1, H, W) (channel k = hands[k-1]),
                        person uint8 (H, W), valid uint8 (H, W)

A hand marked ``stop_at_wrist`` (``cohesiv pseudolabel --stop-at-wrist``) has its forearm past the wrist
read as background (:func:`cohesiv.responsibility.masks.stop_at_wrist`) when the sample is loaded.

Augmentation is a pure function of the sample and a NumPy generator; the generator of a sample is
derived from ``(seed, epoch, index)`` (:func:`sample_rng`), and the order of the samples from
``(seed, epoch)`` (:func:`epoch_order`), so training resumed at any step sees exactly the batches an
uninterrupted run would have seen, and a distributed run sees the same global batches as one process.

Convention: points are ``(x, y)`` pixels with the origin at the centre of the top-left pixel; a
resize by ``s`` maps ``x`` to ``(x + 0.5) * s - 0.5`` (OpenCV's and ``align_corners=False``'s rule).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from cohesiv.config import AugmentConfig
from cohesiv.errors import InputError
from cohesiv.io.dataset import MANIFEST_FILE, iter_manifest, read_sample, wrist_points
from cohesiv.io.images import read_image
from cohesiv.responsibility.masks import stop_at_wrist

#: ImageNet normalisation of the network input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_SWAP_SIDE = {"left": "right", "right": "left", None: None}


@dataclass
class Sample:
    """One pseudo-labelled frame as stored (or after augmentation).

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        responsibility: ``(N+1, H, W)`` float32, channel 0 background, channel k hand k; sums to 1.
        person: ``(H, W)`` uint8 {0, 1}, the hand/arm region.
        valid: ``(H, W)`` uint8 {0, 1}, pixels whose pseudo-label is trusted.
        queries: ``(N, 2)`` float32 query point of each hand, ``(x, y)`` pixels.
        query_valid: ``(N,)`` bool, False for a hand whose query left the image (after a crop).
        sides: side of each hand, "left", "right" or None, as seen in the image.
        id: sample id from the manifest.
    """

    image: np.ndarray
    responsibility: np.ndarray
    person: np.ndarray
    valid: np.ndarray
    queries: np.ndarray
    query_valid: np.ndarray
    sides: list[str | None]
    id: str = ""


@dataclass
class Batch:
    """A training batch (co-tracker's ``CoTrackerData`` idea): one field per tensor, with its shape.

    ``K`` is the largest number of hands in the batch; samples with fewer hands are padded with
    zero responsibility channels, ``point_valid`` False and side None. The responsibility keeps the
    background channel (``cohesiv.model.total_loss`` reads channel k as the hand of query k-1).

    Attributes:
        images: ``(B, 3, H, W)`` float32, ImageNet-normalised RGB.
        points: ``(B, K, 2)`` float32 query points ``(x, y)`` in pixels of ``images``.
        point_valid: ``(B, K)`` bool, False for padding and for queries outside the image.
        responsibility: ``(B, K+1, H, W)`` float32, channel 0 background, channel k the hand of query k-1.
        person: ``(B, 1, H, W)`` float32 {0, 1}.
        object: ``(B, 1, H, W)`` float32 {0, 1}: ``max_k R_k > object_threshold`` and not person.
        valid: ``(B, 1, H, W)`` float32 {0, 1}.
        sides: ``B`` lists of ``K`` sides ("left", "right" or None).
        ids: ``B`` sample ids.
    """

    images: Tensor
    points: Tensor
    point_valid: Tensor
    responsibility: Tensor
    person: Tensor
    object: Tensor
    valid: Tensor
    sides: list[list[str | None]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        """Return a copy with every tensor on ``device``."""
        kw = {
            k: (v.to(device) if isinstance(v, Tensor) else v)
            for k, v in self.__dict__.items()  # dataclass fields
        }
        return Batch(**kw)

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Entry:
    root: Path
    id: str
    image: str
    sample: str
    queries: tuple[tuple[float, float], ...]
    sides: tuple[str | None, ...]
    #: per hand: its keypoints when its manifest entry says ``"stop_at_wrist": true``, else None
    wrist_points: tuple[np.ndarray | None, ...]


class PseudoLabelDataset:
    """The samples of one or more pseudo-label dataset folders, read lazily.

    Args:
        roots: dataset folders (each with ``manifest.jsonl``).

    Raises:
        InputError: a missing folder or manifest, a malformed manifest line (names file and line).
    """

    def __init__(self, roots: Sequence[str | Path]) -> None:
        """Read the manifests (not the samples)."""
        if isinstance(roots, (str, Path)):
            roots = [roots]
        self.roots = [Path(r) for r in roots]
        if not self.roots:
            raise InputError(None, "no pseudo-label dataset given")
        self.entries: list[_Entry] = []
        for root in self.roots:
            self.entries.extend(_read_manifest(root))

    def __len__(self) -> int:
        return len(self.entries)

    def check_files(self) -> None:
        """Check that every sample's image and ``.npz`` exist and that each ``.npz`` is a whole archive.

        Cheap (reads each archive's directory, not its arrays), so a truncated or missing sample is
        reported before training starts rather than when the sampler first draws it.

        Raises:
            InputError: names the first missing or truncated file.
        """
        for e in self.entries:
            if not (e.root / e.image).is_file():
                raise InputError(e.root / e.image, "sample image is missing")
            path = e.root / e.sample
            try:
                with zipfile.ZipFile(path) as z:
                    names = set(z.namelist())
            except FileNotFoundError:
                raise InputError(path, "pseudo-label sample is missing") from None
            except (OSError, zipfile.BadZipFile) as err:
                raise InputError(
                    path, f"cannot read pseudo-label sample ({type(err).__name__}: {err})"
                ) from None
            missing = {"responsibility.npy", "person.npy"} - names
            if missing:
                raise InputError(path, f"pseudo-label sample lacks {sorted(missing)}")

    def load(self, index: int) -> Sample:
        """Read sample ``index`` from disk (no augmentation)."""
        e = self.entries[index]
        image = read_image(e.root / e.image)
        path = e.root / e.sample
        resp, person, valid = read_sample(path)
        h, w = image.shape[:2]
        n = len(e.queries)
        if resp.shape != (n + 1, h, w) or person.shape != (h, w) or valid.shape != (h, w):
            raise InputError(
                path,
                f"responsibility {resp.shape}, person {person.shape}, valid {valid.shape} do not match "
                f"the image ({h}, {w}) with {n} hands (expected ({n + 1}, {h}, {w}))",
            )
        queries = np.asarray(e.queries, dtype=np.float32).reshape(n, 2)
        resp, person = stop_at_wrist(resp, person, e.wrist_points)
        return Sample(
            image=image,
            responsibility=resp,
            person=(person > 0).astype(np.uint8),
            valid=(valid > 0).astype(np.uint8),
            queries=queries,
            query_valid=np.ones(n, dtype=bool),
            sides=list(e.sides),
            id=e.id,
        )


def _read_manifest(root: Path) -> list[_Entry]:
    manifest = root / MANIFEST_FILE
    out = []
    for lineno, d in iter_manifest(root):
        try:
            hands = d.get("hands", [])
            queries = tuple((float(h["query"][0]), float(h["query"][1])) for h in hands)
            sides = tuple(h.get("side") for h in hands)
            wrist = wrist_points(hands)
            out.append(_Entry(root, str(d["id"]), str(d["image"]), str(d["sample"]), queries, sides, wrist))
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise InputError(manifest, f"line {lineno}: malformed sample entry ({err!r})") from None
    if not out:
        raise InputError(manifest, "the dataset holds no samples")
    return out


# --------------------------------------------------------------------------------------- augmentation


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Return the generator that augments sample ``index`` in ``epoch`` (independent of process and order)."""
    return np.random.default_rng([int(seed), int(epoch), int(index), 0xA06])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Return the permutation of ``range(n)`` used in ``epoch`` (same in every process)."""
    return np.random.default_rng([int(seed), int(epoch), 0x0DE]).permutation(n)


def crop_box(
    width: int, height: int, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[int, int, int, int]:
    """Draw a random crop ``(x0, y0, w, h)`` (integer pixels, inside the image).

    Like torchvision's ``RandomResizedCrop.get_params`` (area fraction in ``cfg.scale``,
    log-uniform aspect ratio in ``cfg.ratio``, 10 tries, then a centre crop of the clamped ratio),
    but drawing from ``rng``.
    """
    area = width * height
    lo, hi = np.log(cfg.ratio[0]), np.log(cfg.ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*cfg.scale)
        ar = float(np.exp(rng.uniform(lo, hi)))
        w = int(round(np.sqrt(target * ar)))
        h = int(round(np.sqrt(target / ar)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < cfg.ratio[0]:
        w, h = width, int(round(width / cfg.ratio[0]))
    elif in_ratio > cfg.ratio[1]:
        h, w = height, int(round(height * cfg.ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def crop_resize(
    s: Sample, box: tuple[int, int, int, int], size: int | tuple[int, int], flip: bool = False
) -> Sample:
    """Crop ``box = (x0, y0, w, h)``, resize to ``size`` and optionally mirror, consistently for every field.

    The image and responsibility are resampled bilinearly, the masks by nearest neighbour (exact
    pixel centres). A query ``(x, y)`` goes to ``((x - x0 + 0.5) * W' / w - 0.5, ...)``; a flip maps
    ``x'`` to ``W' - 1 - x'`` and swaps the sides. Queries that fall outside the output are marked
    invalid in ``query_valid``.

    Args:
        s: the sample.
        box: crop in pixels of ``s``.
        size: output side (square) or ``(W', H')``.
        flip: mirror horizontally after resizing.

    Returns:
        A new :class:`Sample` of size ``(H', W')``.
    """
    x0, y0, w, h = box
    ow, oh = (size, size) if isinstance(size, int) else size
    sl = (slice(y0, y0 + h), slice(x0, x0 + w))

    def lin(a: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(a[sl]), (ow, oh), interpolation=cv2.INTER_LINEAR)

    def near(a: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(a[sl]), (ow, oh), interpolation=cv2.INTER_NEAREST_EXACT)

    image = lin(s.image)
    resp = lin(s.responsibility.transpose(1, 2, 0))
    resp = resp.reshape(oh, ow, -1).transpose(2, 0, 1)
    person, valid = near(s.person), near(s.valid)
    q = s.queries.astype(np.float32).copy()
    q[:, 0] = (q[:, 0] - x0 + 0.5) * (ow / w) - 0.5
    q[:, 1] = (q[:, 1] - y0 + 0.5) * (oh / h) - 0.5
    sides = list(s.sides)
    if flip:
        image, resp, person, valid = image[:, ::-1], resp[:, :, ::-1], person[:, ::-1], valid[:, ::-1]
        q[:, 0] = ow - 1 - q[:, 0]
        sides = [_SWAP_SIDE.get(v, v) for v in sides]
    inside = (q[:, 0] >= -0.5) & (q[:, 0] <= ow - 0.5) & (q[:, 1] >= -0.5) & (q[:, 1] <= oh - 0.5)
    return Sample(
        image=np.ascontiguousarray(image),
        responsibility=np.ascontiguousarray(resp, dtype=np.float32),
        person=np.ascontiguousarray(person),
        valid=np.ascontiguousarray(valid),
        queries=q,
        query_valid=s.query_valid & inside,
        sides=sides,
        id=s.id,
    )


def color_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Jitter brightness, contrast, saturation and hue (torchvision's functional ops, factors from ``rng``).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        rng: the sample's generator.
        cfg: jitter strengths.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    import torchvision.transforms.v2.functional as TF

    b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    hue = rng.uniform(-cfg.hue, cfg.hue)
    order = rng.permutation(4)
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    ops = (
        lambda x: TF.adjust_brightness(x, float(b)),
        lambda x: TF.adjust_contrast(x, float(c)),
        lambda x: TF.adjust_saturation(x, float(s)),
        lambda x: TF.adjust_hue(x, float(hue)) if cfg.hue > 0 else x,
    )
    for i in order:
        t = ops[int(i)](t)
    return t.permute(1, 2, 0).contiguous().numpy()


def augment(s: Sample, rng: np.random.Generator, size: int, cfg: AugmentConfig) -> Sample:
    """Random resized crop to ``size x size``, horizontal flip, colour jitter, grey and blur (image only).

    Args:
        s: a sample as stored.
        rng: its generator (:func:`sample_rng`).
        size: output side in pixels.
        cfg: augmentation parameters.

    Returns:
        The augmented sample, ``size x size``.
    """
    h, w = s.image.shape[:2]
    box = crop_box(w, h, rng, cfg)
    flip = bool(rng.random() < cfg.flip)
    out = crop_resize(s, box, size, flip=flip)
    out.image = color_jitter(out.image, rng, cfg)
    if cfg.grayscale > 0 and rng.random() < cfg.grayscale:  # no draw when off (older runs' crops)
        out.image = np.repeat(cv2.cvtColor(out.image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if cfg.blur > 0 and rng.random() < cfg.blur:
        sigma = float(rng.uniform(*cfg.blur_sigma))
        out.image = cv2.GaussianBlur(out.image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return out


# -------------------------------------------------------------------------------------------- batches


class TrainDataset(torch.utils.data.Dataset):
    """Map-style dataset whose keys are ``(epoch, index)``: the augmentation is a function of the key.

    Args:
        base: the pseudo-label samples.
        size: output side (square, a multiple of 32).
        seed: run seed.
        augment: apply :func:`augment` (training) or only resize the whole frame (validation).
        aug: augmentation parameters.
    """

    def __init__(
        self,
        base: PseudoLabelDataset,
        *,
        size: int,
        seed: int,
        augment: bool = True,
        aug: AugmentConfig | None = None,
    ) -> None:
        """Wrap ``base``."""
        self.base = base
        self.size = int(size)
        self.seed = int(seed)
        self.augment = augment
        self.aug = aug or AugmentConfig()

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int] | int) -> Sample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        s = self.base.load(index)
        if self.augment:
            return augment(s, sample_rng(self.seed, epoch, index), self.size, self.aug)
        h, w = s.image.shape[:2]
        return crop_resize(s, (0, 0, w, h), self.size)


def collate(samples: Sequence[Sample], object_threshold: float = 0.5) -> Batch:
    """Stack samples of equal size into a :class:`Batch`, padding the hands to the largest count ``K``.

    Args:
        samples: samples of the same ``(H, W)``.
        object_threshold: a pixel is "object" when some hand's responsibility exceeds it and it is
            not person.

    Returns:
        The batch (see :class:`Batch` for shapes).
    """
    b = len(samples)
    h, w = samples[0].image.shape[:2]
    k = max(1, max(len(s.queries) for s in samples))
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = (images - mean) / std
    points = torch.zeros(b, k, 2)
    point_valid = torch.zeros(b, k, dtype=torch.bool)
    resp = torch.zeros(b, k + 1, h, w)
    sides: list[list[str | None]] = []
    for i, s in enumerate(samples):
        n = len(s.queries)
        if n:
            points[i, :n] = torch.from_numpy(s.queries)
            point_valid[i, :n] = torch.from_numpy(s.query_valid)
            resp[i, : n + 1] = torch.from_numpy(s.responsibility)
        else:
            resp[i, 0] = torch.from_numpy(s.responsibility[0])
        sides.append(list(s.sides) + [None] * (k - n))
    person = torch.from_numpy(np.stack([s.person for s in samples])).unsqueeze(1).float()
    valid = torch.from_numpy(np.stack([s.valid for s in samples])).unsqueeze(1).float()
    obj = ((resp[:, 1:].amax(1, keepdim=True) > object_threshold) & (person < 0.5)).float()
    return Batch(
        images=images.contiguous(),
        points=points,
        point_valid=point_valid,
        responsibility=resp,
        person=person,
        object=obj,
        valid=valid,
        sides=sides,
        ids=[s.id for s in samples],
    )


class StepBatchSampler(torch.utils.data.Sampler):
    """Yield, for each optimisation step, this rank's share of the global batch as ``(epoch, index)`` keys.

    Step ``t`` uses positions ``[j * B, (j + 1) * B)`` of :func:`epoch_order` of epoch
    ``t // steps_per_epoch`` (``j = t % steps_per_epoch``, incomplete last batches dropped); rank ``r``
    of ``world`` takes the ``r``-th contiguous ``B / world`` of them. Starting at ``start_step`` skips
    the earlier steps without reading anything.

    Args:
        n: number of samples.
        batch: global batch size ``B`` (a multiple of ``world``).
        seed: run seed.
        start_step: first step to yield.
        stop_step: one past the last step to yield.
        rank: this process' rank.
        world: number of processes.
    """

    def __init__(
        self, n: int, batch: int, seed: int, start_step: int, stop_step: int, rank: int = 0, world: int = 1
    ) -> None:
        """Check the sizes."""
        if batch % world:
            raise ValueError(f"global batch {batch} must be a multiple of the number of processes {world}")
        if n < batch:
            raise ValueError(f"the dataset has {n} samples, fewer than one batch of {batch}")
        self.n, self.batch, self.seed = n, batch, seed
        self.start, self.stop = start_step, stop_step
        self.rank, self.world = rank, world
        self.steps_per_epoch = n // batch
        self._order: tuple[int, np.ndarray] | None = None

    def keys(self, step: int) -> list[tuple[int, int]]:
        """Return this rank's ``(epoch, index)`` keys of ``step``."""
        epoch, j = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.n, self.seed, epoch))
        order = self._order[1]
        per = self.batch // self.world
        lo = j * self.batch + self.rank * per
        return [(epoch, int(i)) for i in order[lo : lo + per]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.keys(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
