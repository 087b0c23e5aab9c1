"""Reader and writer of the microgen3D HDF5 schema.

Schema (as published in BGLab/microgen3D, extended by one optional file attribute):

* every **top-level dataset** is one microstructure, stored **flattened** (1-D) in C order
  of its volume shape, with phase ids (``uint8``: donor 0, acceptor 1, mixed 2);
* its **features** are attributes of that dataset: GraSPI descriptors (``ABS_f_D``,
  ``CT_f_D_tort1``, ``CT_f_A_tort1``, …), process parameters (``phi``, ``chi``,
  ``log_time``), provenance (``run_id``, ``step``, ``source``) and volume fractions
  (``vol_frac_D``, ``vol_frac_A``, ``vol_frac_M``) — whatever is present;
* file attribute ``volume_shape`` (int array, e.g. ``[128, 128, 64]``): the shape to which
  each flat dataset is reshaped. The published files do not carry it, so readers take the
  shape from, in order: an explicit ``shape`` argument, the file's ``volume_shape``
  attribute, ``DEFAULT_SHAPE`` = (128, 128, 64) (the Cahn–Hilliard data; the experimental
  data are 64³ and need ``shape=(64, 64, 64)``).

Every read validates that the flat length equals ``prod(shape)`` and that the dtype holds
integer phase ids, raising :class:`SchemaError` naming the file and dataset otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

DEFAULT_SHAPE = (128, 128, 64)
SHAPE_ATTR = "volume_shape"
HUB_ID = "BGLab/microgen3D"
ZENODO_DOI = "10.5281/zenodo.17010419"


class SchemaError(ValueError):
    """A dataset or file does not follow the microgen3D HDF5 schema."""


class DatasetUnavailableError(RuntimeError):
    """A hub data set could not be fetched (offline, missing client, unknown file)."""


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise SchemaError(f"volume shape must be positive integers, got {shape}")
    return shape


def _attr_value(value):
    """HDF5 attribute → plain Python (bytes decoded, 0-d arrays unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _attr_value(value[()])
        if value.dtype.kind in "SO":
            return [_attr_value(v) for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_phase_ids(volume, name: str) -> np.ndarray:
    """Validate and convert a volume of phase ids to uint8."""
    arr = np.asarray(volume)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise SchemaError(f"dataset {name!r}: phase ids must lie in 0..255")
        return arr.astype(np.uint8)
    raise SchemaError(
        f"dataset {name!r}: dtype {arr.dtype} is not an integer phase-id type "
        "(threshold continuous fields with microgen.volumes.phases first)"
    )


class VolumeWriter:
    """Write volumes into a microgen3D HDF5 file; use as a context manager.

    ``mode="w"`` creates/truncates, ``"a"`` appends (shape must match the file's);
    ``file_attrs`` are extra file-level attributes.
    """

    def __init__(
        self,
        path: str | Path,
        shape=DEFAULT_SHAPE,
        mode: str = "w",
        compression: str | None = "gzip",
        file_attrs: Mapping[str, object] | None = None,
    ):
        if mode not in ("w", "a", "x"):
            raise ValueError(f"mode must be 'w', 'a' or 'x', got {mode!r}")
        self.path = Path(path)
        self.shape = _check_shape(shape)
        self.compression = compression
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = h5py.File(self.path, mode)
        if SHAPE_ATTR in self._f.attrs:
            existing = tuple(int(s) for s in self._f.attrs[SHAPE_ATTR])
            if existing != self.shape:
                self._f.close()
                raise SchemaError(
                    f"{self.path}: file has {SHAPE_ATTR}={existing}, writer got {self.shape}"
                )
        else:
            self._f.attrs[SHAPE_ATTR] = np.asarray(self.shape, dtype=np.int64)
        for key, value in (file_attrs or {}).items():
            self._f.attrs[key] = value

    def add(self, name: str, volume, attrs: Mapping[str, object] | None = None) -> None:
        """Store ``volume`` (shape ``self.shape`` or already flat) as dataset ``name``."""
        if not name or "/" in name:
            raise SchemaError(f"dataset name {name!r} must be non-empty and contain no '/'")
        if name in self._f:
            raise SchemaError(f"{self.path}: dataset {name!r} already exists")
        arr = _to_phase_ids(volume, name)
        n = int(np.prod(self.shape))
        if arr.ndim != 1 and arr.shape != self.shape:
            raise SchemaError(
                f"{self.path}: dataset {name!r}: volume shape {arr.shape} does not match "
                f"{self.shape}"
            )
        if arr.size != n:
            raise SchemaError(
                f"{self.path}: dataset {name!r}: flat length {arr.size} != prod{self.shape} = {n}"
            )
        ds = self._f.create_dataset(
            name, data=np.ascontiguousarray(arr).reshape(-1), compression=self.compression
        )
        for key, value in (attrs or {}).items():
            ds.attrs[key] = value

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> VolumeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_volumes(
    path: str | Path,
    volumes: Iterable[tuple[str, np.ndarray, Mapping[str, object]]],
    shape=DEFAULT_SHAPE,
    mode: str = "w",
) -> Path:
    """Write ``(name, volume, attrs)`` triples; returns the path."""
    with VolumeWriter(path, shape=shape, mode=mode) as w:
        for name, vol, attrs in volumes:
            w.add(name, vol, attrs)
    return Path(path)


class VolumeFile:
    """Lazy reader: names are listed on open, volumes are read one at a time.

    ``vf[i]`` / ``vf["name"]`` → volume (reshaped, uint8); ``vf.attrs(key)`` → dict;
    iterating yields ``(name, volume, attrs)``. ``strict_dtype=False`` also accepts
    float datasets whose values are integral (cast to uint8).
    """

    def __init__(self, path: str | Path, shape=None, strict_dtype: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"HDF5 file not found: {self.path}")
        self._f = h5py.File(self.path, "r")
        if shape is not None:
            self.shape = _check_shape(shape)
        elif SHAPE_ATTR in self._f.attrs:
            self.shape = _check_shape(self._f.attrs[SHAPE_ATTR])
        else:
            self.shape = DEFAULT_SHAPE
        self.strict_dtype = strict_dtype
        self.names = [k for k in self._f.keys() if isinstance(self._f[k], h5py.Dataset)]

    def __len__(self) -> int:
        return len(self.names)

    def _key(self, key: int | str) -> str:
        if isinstance(key, (int, np.integer)):
            return self.names[key]
        if key not in self._f or not isinstance(self._f[key], h5py.Dataset):
            raise KeyError(f"{self.path}: no dataset {key!r}")
        return key

    def _dataset(self, name: str) -> h5py.Dataset:
        ds = self._f[name]
        n = int(np.prod(self.shape))
        if ds.size != n:
            raise SchemaError(
                f"{self.path}: dataset {name!r} has flat length {ds.size} "
                f"(shape {ds.shape}) != prod{self.shape} = {n}; pass the right shape="
            )
        kind = ds.dtype.kind
        if kind not in "iub" and (self.strict_dtype or kind != "f"):
            raise SchemaError(
                f"{self.path}: dataset {name!r} has dtype {ds.dtype}, expected uint8 phase ids"
            )
        return ds

    def __getitem__(self, key: int | str) -> np.ndarray:
        name = self._key(key)
        raw = self._dataset(name)[()]
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
                raise SchemaError(f"{self.path}: dataset {name!r} holds non-integer values")
            raw = raw.astype(np.int64)
        return _to_phase_ids(raw, name).reshape(self.shape)

    def attrs(self, key: int | str) -> dict[str, object]:
        name = self._key(key)
        return {k: _attr_value(v) for k, v in self._f[name].attrs.items()}

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, dict[str, object]]]:
        for name in self.names:
            yield name, self[name], self.attrs(name)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> VolumeFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_features(path: str | Path) -> pd.DataFrame:
    """One row per top-level dataset: ``name`` plus every attribute (union of keys).

    Reads attributes only (no volume data); missing attributes are NaN.
    """
    rows = []
    with h5py.File(Path(path), "r") as f:
        for name, obj in f.items():
            if not isinstance(obj, h5py.Dataset):
                continue
            row: dict[str, object] = {"name": name}
            row.update({k: _attr_value(v) for k, v in obj.attrs.items()})
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["name"])
    return df


_HUB_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_dataset(
    path_or_hub_id: str | os.PathLike,
    filename: str | None = None,
    repo_type: str = "dataset",
    cache_dir: str | Path | None = None,
) -> Path:
    """A local path to a microgen3D file.

    * an existing local path is returned as is;
    * ``"owner/name"`` (e.g. ``"BGLab/microgen3D"``) with ``filename`` (e.g.
      ``"data/sample_CH_two_phase.tar.gz"``), or ``"owner/name:filename"``, is fetched with
      ``huggingface_hub.hf_hub_download``; any failure (offline, client missing, unknown
      file) raises :class:`DatasetUnavailableError` naming the id and the manual route.
    """
    text = os.fspath(path_or_hub_id)
    local = Path(text).expanduser()
    if local.exists():
        return local
    repo_id, _, tail = text.partition(":")
    filename = filename or (tail or None)
    if not _HUB_RE.match(repo_id) or text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such file, and not a hub id of the form owner/name: {text!r}")
    manual = (
        f"download it by hand from https://huggingface.co/datasets/{repo_id} "
        f"(or Zenodo doi:{ZENODO_DOI} for {HUB_ID}), extract it, and pass the local path instead"
    )
    if not filename:
        raise DatasetUnavailableError(
            f"hub id {repo_id!r} needs a filename (e.g. 'data/sample_CH_two_phase.tar.gz'); "
            f"or {manual}"
        )
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise DatasetUnavailableError(
            f"cannot fetch {repo_id!r}/{filename}: huggingface_hub is not installed; {manual}"
        ) from exc
    try:
        got = huggingface_hub.hf_hub_download(
            repo_id=repo_id, filename=filename, repo_type=repo_type, cache_dir=cache_dir
        )
    except Exception as exc:  # offline, 404, auth: all mean "not available here"
        raise DatasetUnavailableError(
            f"could not download {filename!r} from hub {repo_type} {repo_id!r} "
            f"({type(exc).__name__}: {exc}); if offline, {manual}"
        ) from exc
    return Path(got)


def import_volumes(
    source: str | os.PathLike, out_h5: str | Path, out_features: str | Path,
    filename: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Stage function: make a published microgen3D HDF5 file (local path or hub id) the
    branch's volume file, linked (not copied: the published files are tens of GB), and
    write its features table (one row per volume) as parquet."""
    path = resolve_dataset(source, filename).resolve()
    if path.suffix != ".h5" and not path.name.endswith((".hdf5", ".h5")):
        raise ValueError(f"{path}: expected an extracted .h5 file (archives must be extracted)")
    features = read_features(path)
    out_h5 = Path(out_h5)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    if out_h5.is_symlink() or out_h5.exists():
        out_h5.unlink()
    out_h5.symlink_to(path)
    features.to_parquet(out_features, index=False)
    return features
