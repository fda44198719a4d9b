import pytest
import torch
import yaml

from cohesiv.model import ModelConfig, build_model, save_run_model

#: A tiny untrained model for the predict command tests.
TINY_CFG = ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=8)


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """Tiny tensors: one thread avoids thread start-up and contention on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with the tiny untrained model (seeded), predicting at size 64."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    save_run_model(run, build_model(TINY_CFG), TINY_CFG)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": TINY_CFG.to_dict(), "predict": {"size": 64}}))
    return run
