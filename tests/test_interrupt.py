"""kill -9 at random points, resume, same result as an uninterrupted run (``tests/interrupt_cases.py``).

The full runs (5 kills of ``cohesiv pseudolabel`` and of ``cohesiv train``, about 3 minutes) are
marked slow; the default run kills ``pseudolabel`` twice on tiny clips (a few seconds: it does not
import torch's training stack).
"""

import interrupt_cases as inter
import pytest


def _assert_same_dataset(r):
    c = r["result"]
    assert r["determinism"]["max_abs_diff"] == 0.0 and r["determinism"]["manifest_equal"]
    assert c["samples"] == r["total"] > 0
    assert c["arrays_compared"] == 3 * c["samples"]
    assert c["max_abs_diff"] == 0.0
    assert c["manifest_equal"] and c["manifest_bytes_equal"]
    assert c["images_equal"] and c["sidecars_equal"] and c["same_file_list"]
    assert c["temporaries_left"] == []
    assert inter.pseudolabel_ok(r)


def test_pseudolabel_killed_twice_resumes_to_the_same_dataset(tmp_path):
    r = inter.bench_pseudolabel(tmp_path, kills=2, seed=0, frames=5)
    assert r["kills"] + r["missed"] >= 1
    _assert_same_dataset(r)


@pytest.mark.slow
def test_pseudolabel_killed_five_times_resumes_to_the_same_dataset(tmp_path):
    r = inter.bench_pseudolabel(tmp_path, kills=5, seed=1)
    assert r["kills"] >= 3, r  # a launch that finished before its kill is not counted
    _assert_same_dataset(r)


@pytest.mark.slow
def test_train_killed_five_times_resumes_to_the_same_weights(tmp_path):
    clips = inter.make_clips(tmp_path / "clips", 6)
    ds = tmp_path / "pl"
    inter.run_ok(inter.cohesiv_cmd("pseudolabel", *clips, "--out", ds, "--quiet"))
    r = inter.bench_train(tmp_path, ds, kills=5, seed=2)
    c = r["result"]
    assert r["kills"] == 5
    assert c["same_keys"] and c["tensors"] > 100
    assert c["max_abs_diff"] == 0.0 and c["n_different"] == 0
    assert c["final_step"] == 12 and c["loss_log_equal"]
    assert c["temporaries_left"] == [], "a kill during a checkpoint save leaves its temporary files"


def test_compare_weights_sees_a_one_ulp_change(tmp_path):
    import torch
    from safetensors.torch import save_file

    a = {"w": torch.linspace(0, 1, 10), "b": torch.zeros(3)}
    b = {k: v.clone() for k, v in a.items()}
    b["w"][3] = torch.nextafter(b["w"][3], torch.tensor(2.0))
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    c = inter.compare_weights(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert c["n_different"] == 1 and 0 < c["max_abs_diff"] < 1e-6
    assert inter.compare_weights(tmp_path / "a.safetensors", tmp_path / "a.safetensors")["max_abs_diff"] == 0


def test_a_killed_checkpoint_save_leaves_no_temporaries_after_the_next_save(tmp_path):
    # kill -9 inside save_checkpoint leaves its .tmp-* files (no finally runs); the next save of the
    # same (single-writer) run must remove them, or every such kill leaks a whole model's worth of disk
    import torch

    from cohesiv.train.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    ck = tmp_path / "checkpoints"
    save_checkpoint(ck, step=1, model_state=model.state_dict(), optimizer_state=opt.state_dict(), state={})
    for name in (".tmp-weights-abc123", ".tmp-optim-def456", ".tmp-state-0a1b2c"):
        (ck / name).write_bytes(b"\0" * 100)  # what a kill during the next save leaves
    assert load_checkpoint(ck)[2]["step"] == 1  # the kill did not break the checkpoint
    save_checkpoint(ck, step=2, model_state=model.state_dict(), optimizer_state=opt.state_dict(), state={})
    assert sorted(p.name for p in ck.iterdir() if p.name.startswith(".tmp-")) == []
    assert load_checkpoint(ck)[2]["step"] == 2
