"""The training loop: AdamW on pseudo-labels, atomic checkpoints, exact resume, DDP, TensorBoard.

Run folder (``cfg.out``)::

    config.yaml                 {"cohesiv_version", "git_sha", "model": {...}, "train": {...}}
    checkpoints/last.safetensors, last.optim.safetensors, last.json   (see cohesiv.train.checkpoint)
    checkpoints/step-NNNNNN.safetensors   weights kept every ``keep_every`` steps (when set)
    log.jsonl                   one line per logged step: step, epoch, loss, loss parts, lr, images/s,
                                time (Unix seconds), cpu_s (this process' CPU seconds since the start)
    train.log                   the same, for people
    tb/                         TensorBoard: loss/*, lr, throughput; images input, R, S

Resuming (``resume=True``) reloads the newest complete checkpoint: model, optimizer, schedule state
and RNG state; the sample order and augmentation are functions of ``(seed, epoch, index)``, so the
resumed run reaches the same weights as an uninterrupted one. Under ``torchrun`` the model is wrapped
in DistributedDataParallel and every process takes ``batch / world`` samples of each global batch;
only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cohesiv.errors import CohesivError
from cohesiv.io.atomic import atomic_write_text
from cohesiv.model.io import run_config_document, save_run_model, write_run_config
from cohesiv.train import dist as D
from cohesiv.train.checkpoint import load_checkpoint, save_checkpoint
from cohesiv.train.config import RESUME_KEYS, TrainConfig, read_train_config
from cohesiv.train.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Batch,
    PseudoLabelDataset,
    StepBatchSampler,
    TrainDataset,
    collate,
)

LossFn = Callable[..., tuple[torch.Tensor, dict[str, Any]]]
_log = logging.getLogger("cohesiv.train")


# ------------------------------------------------------------------------------------------- schedule


@dataclass
class PlateauState:
    """Plateau schedule and early-stopping state (the JSON-able part of ReduceLROnPlateau).

    Attributes:
        best: best validation loss so far (None before the first epoch).
        bad_epochs: epochs without improvement since the last improvement or lr reduction.
        stall_epochs: epochs without improvement (for early stopping; reset only by an improvement).
        scale: current lr multiplier.
    """

    best: float | None = None
    bad_epochs: int = 0
    stall_epochs: int = 0
    scale: float = 1.0

    def update(self, value: float, *, patience: int, factor: float, rel_threshold: float = 1e-4) -> None:
        """Record one epoch's validation loss (improvement = below ``best * (1 - rel_threshold)``)."""
        if self.best is None or value < self.best * (1.0 - rel_threshold):
            self.best, self.bad_epochs, self.stall_epochs = float(value), 0, 0
            return
        self.bad_epochs += 1
        self.stall_epochs += 1
        if self.bad_epochs > patience:
            self.scale *= factor
            self.bad_epochs = 0


def lr_at(step: int, total: int, cfg: TrainConfig, plateau: PlateauState | None = None) -> float:
    """Learning rate of optimisation step ``step`` (0-based) of ``total``.

    constant: ``lr`` after a linear warm-up of ``warmup_steps``; cosine: warm-up, then
    ``lr * (1 + cos(pi * progress)) / 2``; plateau: ``lr * plateau.scale``.
    """
    if cfg.schedule == "plateau":
        return cfg.lr * (plateau.scale if plateau else 1.0)
    warm = min(cfg.warmup_steps, max(total - 1, 0))
    if step < warm:
        return cfg.lr * (step + 1) / (warm + 1)
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - warm) / max(total - warm, 1)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# ---------------------------------------------------------------------------------------------- split


def split_indices(ds: PseudoLabelDataset, val_fraction: float) -> tuple[list[int], list[int]]:
    """Split sample indices into (train, validation) by a hash of the sample id (stable across runs)."""
    if val_fraction <= 0:
        return list(range(len(ds))), []
    train, val = [], []
    for i, e in enumerate(ds.entries):
        h = zlib.crc32(f"{e.root.name}/{e.id}".encode()) / 2**32
        (val if h < val_fraction else train).append(i)
    if not train:
        raise CohesivError("the validation split took every sample; lower val_fraction")
    return train, val


class _Subset(PseudoLabelDataset):
    """A view of some samples of a :class:`PseudoLabelDataset` (indices renumbered from 0)."""

    def __init__(self, base: PseudoLabelDataset, indices: list[int]) -> None:
        self.roots = base.roots
        self.entries = [base.entries[i] for i in indices]


# -------------------------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run: the run folder.
        step: steps done.
        loss: mean training loss of the last logged window (all processes).
        stopped_early: the plateau schedule's early stop ended the run.
        history: ``(step, loss)`` of the steps run in this call (all processes averaged).
    """

    run: Path
    step: int
    loss: float
    stopped_early: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- run folder


def config_document(cfg: TrainConfig) -> dict[str, Any]:
    """Return the ``config.yaml`` document of a run (:func:`cohesiv.model.io.run_config_document`)."""
    train = cfg.to_dict()
    model = train.pop("model")
    return run_config_document(model, train)


#: Old name of :func:`cohesiv.train.config.read_train_config` (the run's ``TrainConfig``), kept
#: for one release; the run folder's ``config.yaml`` is read by :func:`cohesiv.model.io.read_run_config`.
read_run_config = read_train_config


def _check_run_folder(cfg: TrainConfig, resume: bool) -> None:
    out = Path(cfg.out)
    if (out / "config.yaml").is_file():
        if not resume:
            raise CohesivError(
                f"{out}: holds a training run already; pass --resume to continue it, or choose another --out"
            )
        old = read_train_config(out)
        new_d, old_d = cfg.to_dict(), old.to_dict()
        diff = [k for k in RESUME_KEYS if new_d.get(k) != old_d.get(k)]
        if diff:
            detail = "; ".join(f"{k}: run has {old_d.get(k)!r}, now {new_d.get(k)!r}" for k in diff)
            raise CohesivError(f"{out}: cannot resume with a different configuration ({detail})")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CohesivError(f"{out}: exists and is not a cohesiv training run; choose another --out")


# ---------------------------------------------------------------------------------------------- train


def default_loss(cfg: TrainConfig) -> LossFn:
    """Return ``loss_fn(out, batch) -> (loss, parts)``: :func:`cohesiv.model.total_loss` with the run's weights."""
    from cohesiv.model import total_loss

    return partial(
        total_loss,
        w_resp=cfg.w_resp,
        w_emb=cfg.w_emb,
        normalize=cfg.model.normalize_embedding,
        temperature=cfg.model.embedding_temperature,
        object_threshold=cfg.object_threshold,
    )


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _scalar(v: Any) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state().tolist()}


def _set_rng_state(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def _denorm(images: torch.Tensor) -> torch.Tensor:
    mean = images.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


@torch.no_grad()
def validation_loss(
    model: nn.Module,
    ds: TrainDataset,
    ctx: D.DistContext,
    loss_fn: LossFn,
    cfg: TrainConfig,
) -> float:
    """Mean loss over ``ds`` (no augmentation, model in eval mode), averaged over the processes' shards."""
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    idx = list(range(ctx.rank, len(ds), ctx.world))
    per = max(1, cfg.batch // ctx.world)
    for i in range(0, len(idx), per):
        batch = collate([ds[j] for j in idx[i : i + per]], cfg.object_threshold).to(ctx.device)
        out = model(batch.images, batch.points, batch.point_valid)
        loss, _ = loss_fn(out, batch)
        total += torch.tensor([float(loss.detach()) * len(batch), len(batch)], dtype=torch.float64)
    model.train(was_training)
    total = D.all_mean(ctx, total.to(torch.float32)).double() * ctx.world
    return float(total[0] / total[1].clamp(min=1))


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    build_model: Callable[[Any], nn.Module] | None = None,
) -> TrainResult:
    """Train a COHESIV network on pseudo-label datasets and write the run folder.

    Args:
        cfg: the configuration (``cfg.out`` is the run folder).
        resume: continue the run in ``cfg.out`` from its newest checkpoint (starts from scratch when
            it has none). Without it, an existing run folder is refused.
        loss_fn: ``loss_fn(out, batch) -> (loss, parts)``; default :func:`default_loss`.
        progress: show a tqdm progress bar (rank 0, stderr).
        stop_after: stop (after saving) once this step is reached, as if interrupted (for tests).
        build_model: ``build_model(cfg.model) -> nn.Module`` returning a module with the
            :class:`~cohesiv.model.CohesivNet` forward; default :func:`cohesiv.model.build_model`.

    Returns:
        :class:`TrainResult`.

    Raises:
        CohesivError: bad data, an existing run without ``resume``, a ``resume`` with a different
            configuration.
    """
    if build_model is None:
        from cohesiv.model import build_model

    loss_fn = loss_fn or default_loss(cfg)
    ctx = D.init_distributed(cfg.device)
    try:
        return _train(
            cfg,
            ctx,
            resume=resume,
            loss_fn=loss_fn,
            progress=progress,
            stop_after=stop_after,
            build_model=build_model,
        )
    finally:
        if ctx.initialized:
            torch.distributed.destroy_process_group()


@dataclass
class _Data:
    """The training samples of a run and the step counts they give.

    Attributes:
        train: the augmented training samples.
        val: the held-out samples of the plateau schedule (None: the epoch's training loss decides).
        steps_per_epoch: full batches per pass over ``train``.
        total: optimisation steps of the whole run.
    """

    train: TrainDataset
    val: TrainDataset | None
    steps_per_epoch: int
    total: int


def _load_data(cfg: TrainConfig, ctx: D.DistContext) -> _Data:
    """Open the datasets, split off the validation samples, check the batch against them."""
    base = PseudoLabelDataset(cfg.data)
    base.check_files()  # a truncated sample fails now, not hours in
    tr_idx, va_idx = split_indices(base, cfg.val_fraction if cfg.schedule == "plateau" else 0.0)
    train_ds = TrainDataset(
        _Subset(base, tr_idx), size=cfg.size, seed=cfg.seed, augment=True, aug=cfg.augment
    )
    val_ds = (
        TrainDataset(_Subset(base, va_idx), size=cfg.size, seed=cfg.seed, augment=False) if va_idx else None
    )
    if len(train_ds) < cfg.batch:
        raise CohesivError(
            f"{', '.join(cfg.data)}: {len(train_ds)} training samples, fewer than one batch of {cfg.batch}"
        )
    if cfg.batch % ctx.world:
        raise CohesivError(f"--batch {cfg.batch} must be a multiple of the number of processes ({ctx.world})")
    steps_per_epoch = len(train_ds) // cfg.batch
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    return _Data(train_ds, val_ds, steps_per_epoch, total)


@dataclass
class _State:
    """What a checkpoint saves besides the weights and the optimizer (and a resume restores).

    Attributes:
        step: optimisation steps done.
        plateau: the plateau schedule's state.
        epoch_sum: ``[sum, count]`` of this epoch's training losses.
        stopped_early: the early stop ended the run.
        rng: the checkpoint's RNG state, restored by :meth:`restore_rng` once the data loader's
            iterator has drawn its seed (empty: a fresh run, nothing to restore).
    """

    step: int = 0
    plateau: PlateauState = field(default_factory=PlateauState)
    epoch_sum: list = field(default_factory=lambda: [0.0, 0])
    stopped_early: bool = False
    rng: dict = field(default_factory=dict)

    def to_dict(self, data: _Data) -> dict[str, Any]:
        """The checkpoint's JSON state (with the RNG state, taken now)."""
        return {
            "epoch": self.step // data.steps_per_epoch,
            "total_steps": data.total,
            "plateau": self.plateau.__dict__,
            "epoch_loss": self.epoch_sum,
            "stopped_early": self.stopped_early,
            "rng": _rng_state(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> _State:
        """The state of a checkpoint's JSON (its RNG state is kept for :meth:`restore_rng`)."""
        return cls(
            step=int(state["step"]),
            plateau=PlateauState(**state.get("plateau", {})),
            epoch_sum=list(state.get("epoch_loss", [0.0, 0])),
            stopped_early=bool(state.get("stopped_early", False)),
            rng=dict(state.get("rng", {})),
        )

    def restore_rng(self) -> None:
        """Set the global RNG to the checkpoint's state (nothing for a fresh run)."""
        _set_rng_state(self.rng)


def _build(
    cfg: TrainConfig, ctx: D.DistContext, build_model: Callable[[Any], nn.Module]
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The seeded network on its device (SyncBatchNorm, channels-last as configured) and its AdamW."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    if ctx.distributed and cfg.sync_bn and ctx.device.type == "cuda":  # SyncBatchNorm is GPU-only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(ctx.device)
    if cfg.channels_last:  # NHWC: faster convolutions on CPU (oneDNN); the same maths
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.encoder_lr), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    return model, optimizer


def param_groups(model: nn.Module, encoder_lr: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: one (every group's ``lr_scale`` is its multiple of the schedule's rate).

    With ``encoder_lr`` below 1, the encoder's parameters (``model.encoder``) form a first group of
    scale ``encoder_lr`` and the rest a second of scale 1; else one group holds them all, as runs from
    before the option were saved (so their optimizer state still loads).

    Raises:
        CohesivError: ``encoder_lr`` below 1 for a network with no ``encoder``.
    """
    if encoder_lr == 1.0:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, nn.Module):
        raise CohesivError(f"--encoder-lr {encoder_lr:g}: the network {type(model).__name__} has no encoder")
    ids = {id(p) for p in enc.parameters()}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": list(enc.parameters()), "lr_scale": encoder_lr}, {"params": rest, "lr_scale": 1.0}]


def _resume(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> _State:
    """Load the newest checkpoint of ``out`` into the model and optimizer; its state (a fresh one if none)."""
    ckpt = load_checkpoint(out / "checkpoints")
    if ckpt is None:
        return _State()
    model_state, optim_state, state = ckpt
    model.load_state_dict(model_state)
    optimizer.load_state_dict(optim_state)
    return _State.from_dict(state)


class _RunLog:
    """The rank-0 outputs of a run while it trains: ``log.jsonl``, ``train.log`` and TensorBoard.

    On other ranks every method does nothing.
    """

    def __init__(self, out: Path, ctx: D.DistContext, step: int) -> None:
        self.out, self.writer = out, None
        if not ctx.is_main:
            return
        _trim_log(out / "log.jsonl", step)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tb"), purge_step=step if step else None)
        handler = logging.FileHandler(out / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)

    def scalars(self, step: int, rec: dict[str, Any], parts: dict[str, float]) -> None:
        """Write one logged step: its record to ``log.jsonl`` and ``train.log``, its scalars to TensorBoard."""
        if self.writer is None:
            return
        _append_log(self.out / "log.jsonl", rec)
        _log.info(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
        self.writer.add_scalar("loss/total", rec["loss"], step)
        for k, v in parts.items():
            self.writer.add_scalar(f"loss/{k}", v, step)
        self.writer.add_scalar("lr", rec["lr"], step)
        self.writer.add_scalar("throughput/images_per_s", rec["images_per_s"], step)

    def images(self, step: int, batch: Batch, scores: torch.Tensor) -> None:
        """Write the first sample's input, responsibility and score to TensorBoard."""
        if self.writer is None:
            return
        self.writer.add_image("input", _denorm(batch.images[0].detach().cpu()), step)
        self.writer.add_image("R", batch.responsibility[0, 1:2].detach().cpu().clamp(0, 1), step)
        self.writer.add_image("S", scores[0, :1].detach().cpu().clamp(0, 1), step)

    def epoch(self, step: int, epoch: int, value: float, scale: float) -> None:
        """Write an epoch's validation loss and lr scale."""
        if self.writer is None:
            return
        self.writer.add_scalar("loss/validation", value, step)
        _log.info("epoch %d validation loss %.5g lr scale %g", epoch, value, scale)

    def close(self) -> None:
        """Close TensorBoard and detach ``train.log``."""
        if self.writer is None:
            return
        self.writer.close()
        for h in list(_log.handlers):
            _log.removeHandler(h)
            h.close()


def _step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    *,
    lr: float,
    loss_fn: LossFn,
    cfg: TrainConfig,
    fwd_kw: dict[str, Any],
    step: int,
) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """One optimisation step at learning rate ``lr``; return ``(output, loss, loss parts)``."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    output = net(batch.images, batch.points, batch.point_valid, **fwd_kw)
    loss, parts = loss_fn(output, batch)
    parts = {k: v for k, v in parts.items() if k != "loss"}
    if not torch.isfinite(loss):
        raise CohesivError(f"loss became {float(loss)} at step {step}; lower --lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    optimizer.step()
    return output, loss, parts


def _train(
    cfg: TrainConfig,
    ctx: D.DistContext,
    *,
    resume: bool,
    loss_fn: LossFn,
    progress: bool,
    stop_after: int | None,
    build_model: Callable[[Any], nn.Module],
) -> TrainResult:
    """The body of :func:`train` once the process group is up (arguments as there)."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    out = Path(cfg.out)
    _check_run_folder(cfg, resume)
    D.barrier(ctx)
    data = _load_data(cfg, ctx)
    model, optimizer = _build(cfg, ctx, build_model)
    st = _resume(out, model, optimizer) if resume else _State()

    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_run_config(out, config_document(cfg))
    runlog = _RunLog(out, ctx, st.step)
    if ctx.is_main:
        _log.info(
            "%s run %s: %d training samples (%d held out), %d steps/epoch, %d steps, world %d, device %s, "
            "threads %d",
            "resume" if st.step else "start", out, len(data.train), len(data.val or ()), data.steps_per_epoch,
            data.total, ctx.world, ctx.device, torch.get_num_threads(),
        )  # fmt: skip
    D.barrier(ctx)

    net = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    net.train()
    # reduced-resolution heads: the loss compares their scores with pooled targets (no upsampling)
    fwd_kw = {"full_resolution": False} if getattr(model, "head_stride", 1) > 1 else {}

    sampler = StepBatchSampler(len(data.train), cfg.batch, cfg.seed, st.step, data.total, ctx.rank, ctx.world)
    loader = DataLoader(
        data.train,
        batch_sampler=sampler,
        collate_fn=partial(collate, object_threshold=cfg.object_threshold),
        num_workers=cfg.num_workers,
        persistent_workers=False,
    )
    bar = tqdm(
        total=data.total, initial=st.step, disable=None if (progress and ctx.is_main) else True, file=sys.stderr,
        dynamic_ncols=True, desc="train", unit="step",
    )  # fmt: skip
    history: list[tuple[int, float]] = []
    window: list[float] = []
    t0, n0, cpu0 = time.perf_counter(), st.step, time.process_time()
    last_loss = float("nan")

    def save() -> None:
        if ctx.is_main:
            save_checkpoint(
                out / "checkpoints",
                step=st.step,
                model_state=_unwrap(net).state_dict(),
                optimizer_state=optimizer.state_dict(),
                weights_metadata={"format": "cohesiv", "model_config": json.dumps(cfg.model.to_dict())},
                state=st.to_dict(data),
            )
        D.barrier(ctx)

    try:
        batches = iter(loader) if not st.stopped_early else iter(())
        # after iter(loader), which draws the loader's base seed from the global RNG (an uninterrupted
        # run drew it at its start, before the checkpoint's state was taken): the next draw, e.g. the
        # encoder's drop-path, is then the one the uninterrupted run made at this step
        st.restore_rng()
        for batch in batches:
            batch: Batch = batch.to(ctx.device)
            if cfg.channels_last:
                batch.images = batch.images.contiguous(memory_format=torch.channels_last)
            lr = lr_at(st.step, data.total, cfg, st.plateau)
            output, loss, parts = _step(
                net, optimizer, batch, lr=lr, loss_fn=loss_fn, cfg=cfg, fwd_kw=fwd_kw, step=st.step
            )
            st.step += 1
            step = st.step

            vals = torch.tensor([_scalar(loss)] + [_scalar(v) for v in parts.values()])
            vals = D.all_mean(ctx, vals).cpu()
            last_loss = float(vals[0])
            history.append((step, last_loss))
            window.append(last_loss)
            st.epoch_sum = [st.epoch_sum[0] + last_loss, st.epoch_sum[1] + 1]
            bar.update(1)
            if step % cfg.log_every == 0 or step == data.total:
                ips = (step - n0) * cfg.batch / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
                rec = {"step": step, "epoch": (step - 1) // data.steps_per_epoch, "loss": last_loss}
                rec.update({k: float(v) for k, v in zip(parts, vals[1:].tolist())})
                rec.update({"lr": lr, "images_per_s": ips})
                rec.update({"time": time.time(), "cpu_s": time.process_time() - cpu0})
                runlog.scalars(step, rec, dict(zip(parts, vals[1:].tolist())))
                window = []
            if cfg.image_every and step % cfg.image_every == 0 and output.scores is not None:
                runlog.images(step, batch, output.scores)

            if step % data.steps_per_epoch == 0 and cfg.schedule == "plateau":
                if data.val is not None:
                    value = validation_loss(_unwrap(net), data.val, ctx, loss_fn, cfg)
                else:
                    value = st.epoch_sum[0] / max(st.epoch_sum[1], 1)
                st.plateau.update(value, patience=cfg.plateau_patience, factor=cfg.plateau_factor)
                st.epoch_sum = [0.0, 0]
                runlog.epoch(step, step // data.steps_per_epoch, value, st.plateau.scale)
                if cfg.early_stop_patience and st.plateau.stall_epochs >= cfg.early_stop_patience:
                    st.stopped_early = True
                    save()
                    break
            if step % cfg.save_every == 0 or step == data.total:
                save()
            if cfg.keep_every and step % cfg.keep_every == 0 and ctx.is_main:
                save_run_model(out, _unwrap(net), cfg.model, name=f"step-{step:06d}")
            if stop_after is not None and step >= stop_after:
                if step % cfg.save_every:
                    save()
                break
    finally:
        bar.close()
        runlog.close()
    return TrainResult(run=out, step=st.step, loss=last_loss, stopped_early=st.stopped_early, history=history)


def _append_log(path: Path, rec: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    keep = [
        ln
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip() and json.loads(ln)["step"] <= step
    ]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def read_log(run: str | Path) -> list[dict]:
    """Return the records of ``RUN/log.jsonl`` (one per logged step)."""
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
