"""Training state to disk without pickles: tensors in safetensors, everything else in JSON.

``save_state(path, state)`` accepts the nested dicts and lists that ``state_dict()`` of
models, optimizers and LR schedulers return (tensors, numbers, strings, None, with int or
str keys) and ``load_state(path)`` rebuilds them exactly. ``path`` names a pair of files,
``{path}.safetensors`` and ``{path}.json``, each written atomically.

:class:`WeightAverage` is the exponential moving average of a model's weights that every
trainer keeps the same way (its ``shadow`` is plain state to save with ``save_state``).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _pack(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if torch.is_tensor(obj):
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _pack(v, f"{key}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {key!r} in a checkpoint")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    return obj


def save_state(path: str | Path, state: dict) -> None:
    """Write ``state`` as ``{path}.safetensors`` + ``{path}.json`` (atomic renames)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta = _pack(state, "", tensors)
    tmp_t = path.with_name(path.name + ".safetensors.tmp")
    tmp_j = path.with_name(path.name + ".json.tmp")
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(json.dumps(meta))
    os.replace(tmp_t, path.with_name(path.name + ".safetensors"))
    os.replace(tmp_j, path.with_name(path.name + ".json"))


def load_state(path: str | Path) -> dict:
    """Read a state written by :func:`save_state`."""
    path = Path(path)
    tensors = load_file(str(path.with_name(path.name + ".safetensors")))
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    return _unpack(meta, tensors)


def state_exists(path: str | Path) -> bool:
    path = Path(path)
    return all(path.with_name(path.name + s).is_file() for s in (".safetensors", ".json"))


STAGE_PARAMS = ".stage-params.json"
CHECKPOINT_NAMES = ("checkpoints", "checkpoint.safetensors", "checkpoint.json")


def _sha256(path: str | Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def reset_stale_checkpoints(
    out_dir: str | Path,
    params: dict,
    names: tuple[str, ...] = CHECKPOINT_NAMES,
    inputs: tuple[str | Path, ...] = (),
) -> bool:
    """Forget checkpoints in ``out_dir`` written with other parameters.

    Resuming is for a run that was interrupted; when the workflow reruns a stage because its
    parameters changed, an old checkpoint would either fail to load or silently continue the
    old run. ``params`` (JSON-serialisable) are recorded in ``out_dir/.stage-params.json``;
    if they differ from the recorded ones, the named checkpoint files and folders are
    removed. ``inputs`` are data files whose contents (SHA-256) count as parameters: new
    training data makes old checkpoints stale too, while the same data copied again (a new
    modification time, as when a cluster re-stages a shared data folder) does not. Returns True
    when something was removed.
    """
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / STAGE_PARAMS
    stamps = {str(p): _sha256(p) for p in inputs}
    current = json.dumps({"params": params, "inputs": stamps}, sort_keys=True, default=str)
    stale = record.is_file() and record.read_text() != current
    if stale or not record.is_file():
        removed = False
        for name in names:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
                removed = True
            elif path.is_file():
                path.unlink()
                removed = True
        record.write_text(current)
        return removed and stale
    return False


class WeightAverage:
    """Exponential moving average of a model's floating-point state (weights and buffers).

    ``update`` after each optimiser step uses ``min(decay, (1 + step) / (10 + step))``, so
    the average forgets the random initial weights within the first hundred steps;
    ``applied`` swaps the average into the model for validation and saving.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
            if v.dtype.is_floating_point
        }

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        state = model.state_dict()
        for k, v in self.shadow.items():
            v.lerp_(state[k].detach(), 1.0 - d)

    @contextmanager
    def applied(self, model: nn.Module):
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(backup, strict=False)
