"""``cohesiv train``: train the network on pseudo-label datasets (resumable; distributed under torchrun)."""

from __future__ import annotations

import argparse

from cohesiv.config import (
    DEFAULT_STEPS,
    MODEL_PRESETS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    default_of,
    help_default,
)

HELP = "train the network on pseudo-label datasets"
DESCRIPTION = """\
Train the COHESIV network (U-Net embedding + query/key heads) on one or more pseudo-label datasets
written by 'cohesiv pseudolabel'. The run folder gets config.yaml, checkpoints/ (safetensors + JSON,
saved atomically every --save-every steps and at the end), log.jsonl, train.log and tb/ (TensorBoard).

  cohesiv train --data ds1 ds2 --out runs/r1 --steps 2000
  cohesiv train --out runs/r1 --resume              # continue after an interruption (even kill -9)
  cohesiv train --data ds --out runs/paper --preset paper --encoder se_resnext50_32x4d \\
      --encoder-weights se_resnext50.pth             # the paper's recipe (plateau schedule)
  torchrun --nproc_per_node=2 -m cohesiv train --data ds --out runs/ddp --batch 8   # 2 processes

Defaults are for CPU (EfficientNet-Lite0 with bundled ImageNet weights, F = A = 32, query/key heads at
1/4 resolution, 128x128 crops, batch 8, AdamW lr 1e-3 with warm-up and cosine decay, channels-last,
--threads auto): the fastest measured way past the pseudo-labels (bench/time_to_beat.py). Options left
unset take the preset's value, then the default; with --resume, the run's saved config.
"""


def _default(text: str, name: str) -> str:
    """``text`` and the :class:`~cohesiv.config.TrainConfig` default of ``name``."""
    return help_default(text, default_of(TrainConfig, name))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``train`` options."""
    p.add_argument(
        "--data",
        nargs="+",
        metavar="DATASET",
        help="pseudo-label dataset folders (required unless --resume)%(default).0s",
    )
    p.add_argument("--out", required=True, metavar="RUN", help="run folder%(default).0s")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="named recipe: paper = batch 10, lr 1e-2, plateau schedule, full-resolution heads, F = A = 64, no query locality%(default).0s",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--encoder",
        metavar="NAME",
        help="segmentation_models_pytorch encoder (default timm-tf_efficientnet_lite0; resnet18 and "
        "se_resnext50_32x4d, the paper's, with a local weights file)%(default).0s",
    )
    g.add_argument(
        "--encoder-weights",
        metavar="imagenet|none|PATH",
        help="encoder initialisation: 'imagenet' = the ImageNet weights an installed package ships "
        "(timm-tf_efficientnet_lite0 only; the default for that encoder), 'none' = random weights "
        "(the default for other encoders), or a local checkpoint file (.pth/.safetensors; never "
        "downloaded)%(default).0s",
    )
    g.add_argument(
        "--embed-dim", type=int, metavar="F", help="embedding channels (default 32; paper 64)%(default).0s"
    )
    g.add_argument(
        "--head-dim",
        type=int,
        metavar="A",
        help="query/key head channels (default 32; paper preset 64)%(default).0s",
    )
    g.add_argument(
        "--head-stride",
        type=int,
        metavar="S",
        help="run the query/key heads and the responsibility loss on Z average-pooled by S (1, 2, 4; "
        "1 = full resolution, the paper's and --preset paper's); the scores are upsampled for "
        "prediction (default 4)%(default).0s",
    )
    g.add_argument(
        "--query-locality",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="each query also learns a locality weight: S_k = clamp(q_k.K - lambda_k |x - p_k|^2, 0, 1), "
        "so two hands that look alike get different scores (beyond the paper; default: on, off with --preset paper)",
    )
    g.add_argument(
        "--plain-embedding",
        action="store_true",
        help="the paper's embedding loss: plain dot products, no L2 normalisation or temperature "
        "(default: normalised, temperature 0.1)",
    )
    g.add_argument(
        "--embedding-temperature",
        type=float,
        metavar="T",
        help="temperature of the normalised embedding loss (default 0.1)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--size", type=int, help=_default("square crop side, a multiple of 32", "size"))
    g.add_argument("--batch", type=int, help=_default("global batch size", "batch"))
    s = g.add_mutually_exclusive_group()
    s.add_argument("--steps", type=int, help=f"optimisation steps (default {DEFAULT_STEPS} unless --epochs)")
    s.add_argument("--epochs", type=int, help="passes over the training samples")
    g.add_argument("--lr", type=float, help=_default("peak learning rate", "lr"))
    g.add_argument(
        "--encoder-lr",
        type=float,
        metavar="M",
        help=_default(
            "the encoder's learning rate as a multiple of --lr, in [0, 1]: below 1 a pretrained encoder's "
            "ImageNet features change more slowly than the decoder and heads; 0 freezes them",
            "encoder_lr",
        ),
    )
    g.add_argument("--weight-decay", type=float, help=_default("AdamW weight decay", "weight_decay"))
    g.add_argument("--schedule", choices=SCHEDULES, help=_default("learning-rate schedule", "schedule"))
    g.add_argument("--warmup-steps", type=int, help=_default("linear warm-up steps", "warmup_steps"))
    g.add_argument(
        "--val-fraction", type=float, help=_default("held-out share for the plateau schedule", "val_fraction")
    )
    g.add_argument(
        "--object-threshold",
        type=float,
        help=_default("object = hand responsibility above this", "object_threshold"),
    )
    g.add_argument("--w-resp", type=float, help=_default("responsibility loss weight", "w_resp"))
    g.add_argument("--w-emb", type=float, help=_default("embedding loss weight", "w_emb"))
    g.add_argument(
        "--seed", type=int, help=_default("seed of initialisation, order and augmentation", "seed")
    )
    g = p.add_argument_group("run")
    g.add_argument("--save-every", type=int, help=_default("checkpoint every N steps", "save_every"))
    g.add_argument(
        "--keep-every",
        type=int,
        metavar="N",
        help=_default(
            "also keep the weights of every N-th step as checkpoints/step-NNNNNN.safetensors (0: never)",
            "keep_every",
        ),
    )
    g.add_argument("--log-every", type=int, help=_default("log scalars every N steps", "log_every"))
    g.add_argument(
        "--image-every", type=int, help=_default("TensorBoard images every N steps, 0 = never", "image_every")
    )
    g.add_argument("--num-workers", type=int, help=_default("data loader processes", "num_workers"))
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help=_default("channels-last (NHWC) memory layout for the network (faster on CPU)", "channels_last"),
    )
    g.add_argument(
        "--threads",
        default="auto",
        metavar="N|auto",
        help="torch CPU threads. auto (default): $OMP_NUM_THREADS when set, else the CPUs this process "
        "may use (os.sched_getaffinity) minus the other tasks runnable now (/proc/loadavg; else the 1-minute load average), rounded, at least 1 -- on a "
        "CPU shared with other jobs, one thread per core is several times slower than fewer threads; "
        "the count is written to train.log",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


_FIELDS = (
    "size", "batch", "steps", "epochs", "lr", "encoder_lr", "weight_decay", "schedule", "warmup_steps", "val_fraction",
    "object_threshold", "w_resp", "w_emb", "seed", "save_every", "keep_every", "log_every", "image_every", "num_workers",
    "device", "channels_last",
)  # fmt: skip


def build_config(args: argparse.Namespace):
    """Return the :class:`~cohesiv.train.TrainConfig` of the parsed arguments (and, with --resume, the saved run)."""
    import dataclasses
    import os
    from pathlib import Path

    from cohesiv.errors import CohesivError
    from cohesiv.model import ModelConfig
    from cohesiv.train import make_config, read_train_config

    given = {k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    model_over = {
        k: v
        for k, v in {
            "encoder_name": args.encoder,
            "encoder_weights": args.encoder_weights,
            "embed_dim": args.embed_dim,
            "head_dim": args.head_dim,
            "head_stride": args.head_stride,
            "query_locality": args.query_locality,
            "normalize_embedding": False if args.plain_embedding else None,
            "embedding_temperature": 1.0 if args.plain_embedding else args.embedding_temperature,
        }.items()
        if v is not None
    }
    if args.resume and (Path(args.out) / "config.yaml").is_file():
        saved = read_train_config(args.out)
        if args.data:  # absolute, as make_config saved them: a relative --data resumes too
            given["data"] = tuple(os.path.abspath(p) for p in args.data)
        if "steps" in given:
            given["epochs"] = None
        elif "epochs" in given:
            given["steps"] = None
        model = dataclasses.replace(saved.model, **model_over)
        return dataclasses.replace(saved, model=model, out=str(args.out), **given)
    if not args.data:
        raise CohesivError("--data is required (unless --resume continues an existing run)")
    if args.preset:
        model_over = {**MODEL_PRESETS.get(args.preset, {}), **model_over}
    return make_config(
        data=args.data, out=args.out, preset=args.preset, model=ModelConfig(**model_over), **given
    )


def run(args: argparse.Namespace) -> int:
    """Train, print where the run is and its last loss."""
    import sys

    from cohesiv.threads import set_threads
    from cohesiv.train import train

    cfg = build_config(args)
    set_threads(args.threads)  # the count is in train.log's start line
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    import os

    if os.environ.get("RANK", "0") == "0":
        note = " (stopped early: validation loss stalled)" if result.stopped_early else ""
        if not result.history:  # a resumed run that had already finished
            print(f"{result.run}: step {result.step}, already finished{note}", file=sys.stderr)
        else:
            print(f"{result.run}: step {result.step}, loss {result.loss:.4f}{note}", file=sys.stderr)
    return 0
