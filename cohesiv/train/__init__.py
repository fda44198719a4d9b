"""Training on pseudo-labels (dataset, augmentation, loop with checkpoints/resume/DDP) and calibration."""

from cohesiv.train.config import PRESETS, TrainConfig, make_config, read_train_config
from cohesiv.train.data import AugmentConfig, Batch, PseudoLabelDataset, Sample, TrainDataset, collate
from cohesiv.train.loop import TrainResult, read_log, read_run_config, train

__all__ = [
    "PRESETS",
    "AugmentConfig",
    "Batch",
    "PseudoLabelDataset",
    "Sample",
    "TrainConfig",
    "TrainDataset",
    "TrainResult",
    "collate",
    "make_config",
    "read_log",
    "read_run_config",
    "read_train_config",
    "train",
]
