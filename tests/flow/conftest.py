import numpy as np
import pytest
from flow_util import epe, textured, translate  # noqa: F401


@pytest.fixture
def texture() -> np.ndarray:
    return textured()
