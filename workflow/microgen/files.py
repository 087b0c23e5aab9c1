"""Digests of files: the one place the library hashes a file (no torch, so every layer and
every environment can use it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_digests(path: str | Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file by each of ``algorithms`` (``hashlib`` names), in one pass.

    One pass matters for the deposits' archives (over a GB) checked by SHA-256 and MD5.
    """
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    return file_digests(path)["sha256"]
