import pytest
from eval_scene import write_clip


@pytest.fixture
def make_clip(tmp_path):
    counter = iter(range(1000))

    def make(**kw):
        return write_clip(tmp_path / f"clip{next(counter)}", **kw)

    return make
