import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The shared real-data folder (``COHESIV_DATA`` or ``../shared/data``), or None."""
    env = os.environ.get("COHESIV_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    p = shared_data_dir()
    if p is None:
        pytest.skip("shared data folder not found (set COHESIV_DATA)")
    return p
