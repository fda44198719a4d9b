import json
import os

import pytest
import torch
from safetensors.torch import save_file

from cohesiv.errors import CohesivError
from cohesiv.train.checkpoint import (
    checkpoint_step,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)


def _model_and_opt(steps=2):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(steps):
        opt.zero_grad()
        m(torch.randn(5, 3)).pow(2).mean().backward()
        opt.step()
    return m, opt


def test_optimizer_round_trip_continues_identically():
    m, opt = _model_and_opt()
    tensors, scalars = optimizer_to_flat(opt.state_dict())
    json.dumps(scalars)  # the scalar part is plain JSON
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    m2, opt2 = _model_and_opt(0)
    m2.load_state_dict(m.state_dict())
    tensors = {k: v.clone() for k, v in tensors.items()}  # as if read from the file
    opt2.load_state_dict(optimizer_from_flat(tensors, json.loads(json.dumps(scalars))))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    x = torch.randn(5, 3)
    for mm, oo in ((m, opt), (m2, opt2)):
        oo.zero_grad()
        mm(x).pow(2).mean().backward()
        oo.step()
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_save_load_round_trip(tmp_path):
    m, opt = _model_and_opt()
    save_checkpoint(
        tmp_path, step=7, model_state=m.state_dict(), optimizer_state=opt.state_dict(), state={"a": 1}
    )
    sd, osd, state = load_checkpoint(tmp_path)
    assert state["step"] == 7 and state["a"] == 1 and checkpoint_step(tmp_path) == 7
    for k, v in m.state_dict().items():
        assert torch.equal(sd[k], v)
    assert set(osd["state"]) == set(opt.state_dict()["state"])
    assert not list(tmp_path.glob(".tmp-*"))


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    # mkstemp makes 0600 files; outputs must be readable as if written with open() (0666 - umask)
    from cohesiv.io import atomic_write_text

    old = os.umask(0o027)
    try:
        import importlib

        import cohesiv.io.atomic as atomic

        importlib.reload(atomic)  # FILE_MODE is read at import
        assert atomic.FILE_MODE == 0o640
    finally:
        os.umask(old)
        importlib.reload(atomic)
    expected = 0o666 & ~old
    atomic_write_text(tmp_path / "a.txt", "x")
    m, opt = _model_and_opt()
    save_checkpoint(tmp_path, step=1, model_state=m.state_dict(), optimizer_state=opt.state_dict(), state={})
    for f in (tmp_path / "a.txt", tmp_path / "last.safetensors", tmp_path / "last.json"):
        assert f.stat().st_mode & 0o777 == expected, f


def test_load_falls_back_when_a_save_was_cut(tmp_path):
    m, opt = _model_and_opt()
    save_checkpoint(tmp_path, step=2, model_state=m.state_dict(), optimizer_state=opt.state_dict(), state={})
    save_checkpoint(tmp_path, step=4, model_state=m.state_dict(), optimizer_state=opt.state_dict(), state={})
    # simulate kill -9 during the next save: new weights renamed in, optimizer and state not yet
    os.replace(tmp_path / "last.safetensors", tmp_path / "prev.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "last.safetensors", metadata={"step": "6"})
    assert checkpoint_step(tmp_path) == 4
    _, _, state = load_checkpoint(tmp_path)
    assert state["step"] == 4


def test_load_without_checkpoint(tmp_path):
    assert load_checkpoint(tmp_path / "none") is None
    (tmp_path / "last.json").write_text('{"step": 3}')
    with pytest.raises(CohesivError, match="incomplete"):
        load_checkpoint(tmp_path)
