"""Training state round-trips through safetensors + JSON exactly (no pickles)."""

from __future__ import annotations

import pytest
import torch

from microgen.checkpoint import load_state, save_state


def test_optimizer_and_scheduler_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": 3,
        "best": float("inf"),
        "tag": (1, "a"),
    }
    save_state(tmp_path / "ckpt", state)
    back = load_state(tmp_path / "ckpt")
    assert back["epoch"] == 3 and back["best"] == float("inf") and back["tag"] == (1, "a")
    # Optimizer state has int keys; they must come back as ints for load_state_dict.
    assert set(back["optimizer"]["state"]) == {0, 1}
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][k], v)
    assert back["scheduler"] == sched.state_dict()


def test_unstorable_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_state(tmp_path / "x", {"bad": object()})


def test_changed_parameters_forget_old_checkpoints(tmp_path):
    from microgen.checkpoint import reset_stale_checkpoints

    (tmp_path / "checkpoints" / "step-4").mkdir(parents=True)
    assert not reset_stale_checkpoints(tmp_path, {"steps": 10})  # first record: nothing stale
    (tmp_path / "checkpoints" / "step-4").mkdir(parents=True)
    # Same parameters: an interrupted run keeps its checkpoints to resume from.
    assert not reset_stale_checkpoints(tmp_path, {"steps": 10})
    assert (tmp_path / "checkpoints" / "step-4").is_dir()
    # Other parameters: the old run's checkpoints go.
    assert reset_stale_checkpoints(tmp_path, {"steps": 20})
    assert not (tmp_path / "checkpoints").exists()


def test_new_training_data_makes_checkpoints_stale(tmp_path):
    from microgen.checkpoint import reset_stale_checkpoints

    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    out = tmp_path / "model"
    reset_stale_checkpoints(out, {"steps": 10}, inputs=(data,))
    (out / "checkpoints").mkdir()
    data.write_text("a\n1\n2\n")  # the data set was regenerated
    assert reset_stale_checkpoints(out, {"steps": 10}, inputs=(data,))
    assert not (out / "checkpoints").exists()


def test_a_fresh_copy_of_the_same_data_keeps_checkpoints(tmp_path):
    """A re-staged data folder (same bytes, new modification time) must not throw away hours
    of training: staleness is decided by content."""
    import os

    from microgen.checkpoint import reset_stale_checkpoints

    data = tmp_path / "folds.json"
    data.write_text('{"0": ["a"]}')
    out = tmp_path / "model"
    reset_stale_checkpoints(out, {"steps": 10}, inputs=(data,))
    (out / "checkpoints").mkdir()
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**12))
    assert not reset_stale_checkpoints(out, {"steps": 10}, inputs=(data,))
    assert (out / "checkpoints").is_dir()


def _write_raw_safetensors(path, metadata_items):
    """A one-tensor safetensors file whose metadata keys are in the given order (what the
    Rust writer's hash map does at random)."""
    import json
    import struct

    data = torch.arange(3.0).numpy().tobytes()
    header = {
        "__metadata__": dict(metadata_items),
        "t": {"dtype": "F32", "shape": [3], "data_offsets": [0, len(data)]},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_sorted_safetensors_header_makes_bytes_depend_on_content_only(tmp_path):
    from safetensors import safe_open

    from microgen.checkpoint import sort_safetensors_header

    x, y = tmp_path / "x.safetensors", tmp_path / "y.safetensors"
    _write_raw_safetensors(x, [("z", "1"), ("format", "pt")])
    _write_raw_safetensors(y, [("format", "pt"), ("z", "1")])
    assert x.read_bytes() != y.read_bytes()
    for path in (x, y):
        sort_safetensors_header(path)
    assert x.read_bytes() == y.read_bytes()
    with safe_open(str(x), "pt") as f:
        assert f.metadata() == {"format": "pt", "z": "1"}
        assert torch.equal(f.get_tensor("t"), torch.arange(3.0))
