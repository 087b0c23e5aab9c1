"""Training state to disk without pickles, and the one checkpoint layout of every trainer.

``save_state(path, state)`` accepts the nested dicts and lists that ``state_dict()`` of
models, optimizers and LR schedulers return (tensors, numbers, strings, None, with int or
str keys) and ``load_state(path)`` rebuilds them exactly. ``path`` names a pair of files,
``{path}.safetensors`` and ``{path}.json``, each written atomically.

:class:`Checkpoints` is the folder of one training run's checkpoints (``step-NNNNNNN/``
folders that exist only once complete, the run's log inside each, ``best/``, pruning);
:func:`export` writes a trainer's declared outputs from it. :class:`WeightAverage` is the
exponential moving average of a model's weights that every trainer keeps the same way.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from microgen.files import sha256_file


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


def sort_safetensors_header(path: str | Path) -> None:
    """Rewrite a safetensors file's header with its keys sorted.

    The Rust writer keeps ``__metadata__`` in a hash map whose order changes from call to
    call, so two saves of equal tensors with more than one metadata entry (diffusers' LoRA
    files) differ in bytes. Sorting makes the bytes depend on the content only; the tensor
    offsets are relative to the data, which is not touched.
    """
    import struct

    path = Path(path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data to 8 bytes
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    os.replace(tmp, path)


CHECKPOINTS = "checkpoints"
TRAINING_STATE = "training_state"  # save_state pair: optimiser, schedulers, RNG states
HISTORY = "train_log.csv"
BEST = "best"
MODEL = "model"  # the model folder inside a checkpoint, as a finished run exports it
_STEP = re.compile(r"^step-(\d+)$")


def write_history(
    rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] = ()
) -> None:
    """Write training-log rows as CSV, atomically: ``columns`` first (the header of a log
    without rows), then any other keys in first-seen order."""
    path = Path(path)
    columns = list(columns)
    for row in rows:
        columns += [k for k in row if k not in columns]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Rows written by :func:`write_history`, numbers as numbers (empty cells as NaN)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return []
    try:
        return pd.read_csv(path).to_dict("records")
    except pd.errors.EmptyDataError:  # a log written before the first row had no header
        return []


def _replace_tree(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` at ``target`` (a folder rename cannot overwrite one
    that is not empty, so an old ``target`` goes first)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old)
    else:
        os.replace(tmp, target)


def export(source: str | Path, target: str | Path) -> Path:
    """Write the file or folder ``source`` to ``target`` atomically.

    Files are hard-linked where the file system allows it (checkpoint files are never
    changed in place, only replaced, so a link costs no disk and cannot go stale), copied
    otherwise. An existing ``target`` is replaced.
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.export")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, tmp, copy_function=link)
        _replace_tree(tmp, target)
    else:
        link(str(source), str(tmp))
        os.replace(tmp, target)
    return target


class Checkpoints:
    """The checkpoints of one training run, in ``{out_dir}/checkpoints``.

    * ``step-NNNNNNN/``: one folder per saved step (an epoch for trainers that count epochs),
      filled under a hidden name and renamed into place, so a folder that exists is
      complete. It holds what the trainer saves there, its ``training_state`` (optimiser,
      schedulers, RNG: see :func:`save_state`) and ``train_log.csv``, the log up to that
      step, so a resumed run continues the log where its checkpoint is.
    * ``best/``: the weights a trainer that selects by validation keeps, replaced
      atomically.

    While training the ``keep`` newest step folders stay; :meth:`finish` keeps
    ``keep_finished`` and removes their training state (the optimiser moments alone are
    twice the model). Trainers write their declared outputs with :func:`export` from here at
    the end of *every* run, also one that found nothing left to train: the workflow manager
    deletes the outputs of a killed job, and only this folder survives it.
    """

    def __init__(self, out_dir: str | Path, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.root = Path(out_dir) / CHECKPOINTS
        self.keep = keep

    @property
    def best(self) -> Path:
        return self.root / BEST

    def steps(self) -> list[tuple[int, Path]]:
        """``(step, folder)`` of every complete checkpoint, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP.match(p.name))]
        return sorted(found)

    def latest(self) -> tuple[int, Path] | None:
        """``(step, folder)`` of the newest complete checkpoint, or ``None``."""
        found = self.steps()
        return found[-1] if found else None

    @staticmethod
    def history(folder: str | Path) -> list[dict[str, Any]]:
        """The training log saved with the checkpoint ``folder``."""
        return read_history(Path(folder) / HISTORY)

    @staticmethod
    def has_training_state(folder: str | Path) -> bool:
        return state_exists(Path(folder) / TRAINING_STATE)

    @contextmanager
    def save(self, step: int, history: Sequence[Mapping[str, Any]]) -> Iterator[Path]:
        """Yield an empty folder to fill; on leaving, it becomes ``step-NNNNNNN`` with
        ``history`` beside its contents, and older folders beyond ``keep`` go."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".step-{step:07d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        yield tmp
        write_history(history, tmp / HISTORY)
        _replace_tree(tmp, self.root / f"step-{step:07d}")
        self.prune(self.keep)

    @contextmanager
    def save_best(self) -> Iterator[Path]:
        """Yield an empty folder to fill; on leaving, it replaces ``best/``."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{BEST}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        yield tmp
        _replace_tree(tmp, self.best)

    def prune(self, keep: int) -> None:
        """Delete all but the ``keep`` newest step folders."""
        for _, folder in self.steps()[:-keep]:
            shutil.rmtree(folder)

    def export_latest(
        self, out_dir: str | Path, model: str = MODEL, keep_training_state: bool = False
    ) -> Path:
        """End of a run that reached its length: write the outputs from the newest
        checkpoint (every entry of its ``model`` folder into ``out_dir``, ``best/`` when
        there is one, the log), then :meth:`finish`."""
        found = self.latest()
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {self.root} to export")
        out_dir, folder = Path(out_dir), found[1]
        for item in sorted((folder / model).iterdir()):
            export(item, out_dir / item.name)
        if self.best.is_dir():
            export(self.best, out_dir / BEST)
        export(folder / HISTORY, out_dir / HISTORY)
        self.finish(keep_training_state=keep_training_state)
        return out_dir

    def finish(self, keep: int = 1, keep_training_state: bool = False) -> None:
        """End of a finished run: keep the ``keep`` newest step folders and, unless asked,
        drop their training state (a finished run is only ever exported again)."""
        self.prune(keep)
        if keep_training_state:
            return
        for _, folder in self.steps():
            for suffix in (".safetensors", ".json"):
                (folder / f"{TRAINING_STATE}{suffix}").unlink(missing_ok=True)


STAGE_PARAMS = ".stage-params.json"
CHECKPOINT_NAMES = (CHECKPOINTS,)


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
    stamps = {str(p): sha256_file(p) for p in inputs}
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
