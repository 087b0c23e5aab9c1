"""Verified, resumable, atomic downloads of the files named in a manifest.

A manifest (``resources/manifests/{name}.yaml``) lists files with their URL relative to a
mirror base and their SHA-256. A download goes to ``{target}.part`` (resumed with an HTTP
Range request when a partial file exists), is hashed, and is renamed onto the target only
when the digest matches — a target that exists is therefore always complete and verified.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a manifest."""

    name: str
    url: str
    sha256: str | None
    size: int | None = None


def read_manifest(path: str | Path, base_url: str | None = None) -> dict[str, ManifestEntry]:
    """Entries of a manifest keyed by file name; ``base_url`` overrides the mirror."""
    with Path(path).open() as fh:
        raw = yaml.safe_load(fh)
    base = (base_url or raw["base_url"]).rstrip("/")
    return {
        f["name"]: ManifestEntry(
            name=f["name"],
            url=f.get("url") or f"{base}/{f['name']}",
            sha256=f.get("sha256"),
            size=f.get("size"),
        )
        for f in raw["files"]
    }


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DownloadError(RuntimeError):
    """A download failed; the message names the URL and the manual alternative."""


def fetch(entry: ManifestEntry, target: str | Path, timeout: float = 60.0) -> Path:
    """Download ``entry`` to ``target``, verified against its SHA-256.

    An existing verified target is kept. Raises :class:`DownloadError` naming the URL and
    how to place the file by hand when the network is unreachable or the digest differs.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and _verified(target, entry):
        return target
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(entry.url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    manual = (
        f"download {entry.url} by hand and place it at {target}"
        + (f" (SHA-256 {entry.sha256})" if entry.sha256 else "")
        + ", or set the mirror URL in the config"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = offset and response.status == 206
            mode = "ab" if resumed else "wb"
            total = response.length
            with (
                part.open(mode) as fh,
                tqdm(
                    total=(total or 0) + (offset if resumed else 0),
                    initial=offset if resumed else 0,
                    unit="B",
                    unit_scale=True,
                    desc=entry.name,
                ) as bar,
            ):
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DownloadError(f"cannot download {entry.url}: {err}. Offline? {manual}") from err
    if not _verified(part, entry):
        got = sha256_of(part)
        part.unlink()
        raise DownloadError(f"{entry.url}: SHA-256 {got} differs from the manifest. {manual}")
    os.replace(part, target)
    return target


def _verified(path: Path, entry: ManifestEntry) -> bool:
    if entry.sha256 is None:
        # The manifest does not know this file's digest yet: print it so it can be recorded.
        print(f"{path}: no SHA-256 in the manifest; digest is {sha256_of(path)}")
        return True
    return sha256_of(path) == entry.sha256
