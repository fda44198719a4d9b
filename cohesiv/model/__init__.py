"""The COHESIV network, its losses, encoder-weight loading, run-folder I/O and the predictor.

Building a network sets ``HF_HUB_OFFLINE=1`` (unless already set) before the hub libraries are
imported (:func:`cohesiv.model.weights.hub_offline`): weights only ever come from local files.
"""

from cohesiv.model.io import (
    RUN_FORMAT,
    Calibration,
    check_run_config,
    load_run_model,
    read_calibration,
    read_model_config,
    save_run_model,
    write_calibration,
)
from cohesiv.model.losses import (
    CohesivLoss,
    EmbeddingLoss,
    ResponsibilityLoss,
    build_loss,
    embedding_loss,
    object_from_responsibility,
    responsibility_loss,
    total_loss,
)
from cohesiv.model.net import (
    DEFAULT_ENCODER,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_ENCODER,
    SIZE_MULTIPLE,
    CohesivNet,
    ModelConfig,
    NetOutput,
    build_model,
    normalize_images,
    pixel_to_grid,
    sample_at_points,
)
from cohesiv.model.predictor import Prediction, Predictor, compose_label, readout
from cohesiv.model.readout import Readout
from cohesiv.model.weights import load_encoder_weights, read_state_dict

__all__ = [
    "DEFAULT_ENCODER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAPER_ENCODER",
    "RUN_FORMAT",
    "SIZE_MULTIPLE",
    "Calibration",
    "CohesivLoss",
    "CohesivNet",
    "EmbeddingLoss",
    "ModelConfig",
    "NetOutput",
    "Prediction",
    "Predictor",
    "Readout",
    "ResponsibilityLoss",
    "build_loss",
    "check_run_config",
    "build_model",
    "compose_label",
    "embedding_loss",
    "load_encoder_weights",
    "load_run_model",
    "normalize_images",
    "object_from_responsibility",
    "pixel_to_grid",
    "read_calibration",
    "read_model_config",
    "read_state_dict",
    "readout",
    "responsibility_loss",
    "sample_at_points",
    "save_run_model",
    "total_loss",
    "write_calibration",
]
