"""Verified, resumable, atomic downloads of the files named in a manifest.

A manifest (``resources/manifests/{name}.yaml``) lists files with their URL relative to a
mirror base and the digests and size the deposit publishes: ``sha256``, else ``md5`` (figshare
publishes only MD5), and ``size`` in bytes. A download goes to ``{target}.part`` (resumed with
an HTTP Range request when a partial file exists), is checked against the size and every
digest given, and is renamed onto the target only when all match: a target that exists is
therefore always complete and verified. A file with neither digest is refused unless the
caller allows unverified downloads explicitly (a 17-byte error page saved as a "zip" was once
accepted). The mirror may be an ``http(s)://`` or ``file://`` URL or a local folder.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from microgen.files import CHUNK, file_digests

# Schemes urllib opens; anything else (no scheme, a Windows drive letter) is a local path.
URL_SCHEMES = ("http", "https", "ftp", "file")
UNVERIFIED_OPTION = "dataset.uhcsdb.allow_unverified_downloads: true"


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a manifest.

    Attributes
    ----------
    name : local file name.
    url : where it is downloaded from.
    sha256, md5 : hex digests the deposit publishes (None: not known).
    size : size in bytes (None: not known).
    manifest : the manifest file the entry comes from, named in messages.
    """

    name: str
    url: str
    sha256: str | None
    size: int | None = None
    md5: str | None = None
    manifest: str | None = None


def as_url(location: str) -> str:
    """``location`` as a URL: URLs are kept, a local path becomes an absolute ``file://`` URL."""
    if urllib.parse.urlsplit(location).scheme in URL_SCHEMES:
        return location
    return Path(location).expanduser().resolve().as_uri()


def read_manifest(path: str | Path, base_url: str | None = None) -> dict[str, ManifestEntry]:
    """Entries of a manifest keyed by file name.

    Parameters
    ----------
    path
        The manifest (YAML: ``base_url`` and ``files``, each with ``name`` and optionally
        ``url``, ``sha256``, ``md5``, ``size``).
    base_url
        A mirror replacing the manifest's ``base_url`` and every file's own ``url`` (a
        mirror holds the files under their names): an ``http(s)://`` or ``file://`` URL, or
        a local folder.

    Returns
    -------
    dict
        File name to :class:`ManifestEntry`.
    """
    with Path(path).open() as fh:
        raw = yaml.safe_load(fh)
    base = as_url(base_url or raw["base_url"]).rstrip("/")
    return {
        f["name"]: ManifestEntry(
            name=f["name"],
            url=f"{base}/{f['name']}" if base_url else f.get("url") or f"{base}/{f['name']}",
            sha256=f.get("sha256"),
            size=f.get("size"),
            md5=f.get("md5"),
            manifest=str(path),
        )
        for f in raw["files"]
    }


class DownloadError(RuntimeError):
    """A download failed or was refused; the message names the file and what to do."""


def fetch(
    entry: ManifestEntry,
    target: str | Path,
    timeout: float = 60.0,
    allow_unverified: bool = False,
) -> Path:
    """Download ``entry`` to ``target``, verified against its size and digests.

    Parameters
    ----------
    entry
        The manifest entry; its ``size``, ``sha256`` and ``md5`` are checked when given.
    target
        Where the verified file is placed. An existing target that verifies is kept.
    timeout
        Seconds to wait for the server.
    allow_unverified
        Accept a file whose entry has neither digest (a warning prints its SHA-256);
        without it such a file is refused before anything is downloaded.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    DownloadError
        Naming the file, the URL and the manual alternative, when the source is unreachable,
        the size or a digest differs (nothing is left behind then) or the entry has no
        digest and ``allow_unverified`` is false.
    """
    target = Path(target)
    where = f" in {entry.manifest}" if entry.manifest else ""
    if entry.sha256 is None and entry.md5 is None and not allow_unverified:
        raise DownloadError(
            f"{entry.name}: no digest (sha256 or md5) recorded for it{where}, so a download "
            "could not be verified and is refused. Record the deposit's digest there, give a "
            f"local copy you have checked instead, or set {UNVERIFIED_OPTION} to accept it "
            "unverified (its SHA-256 is then printed)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        problem, sha = _check(target, entry)
        if problem is None:
            _report(entry, sha, target)
            return target
        target.unlink()  # a target that exists is verified; this one is not
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        part.unlink()  # longer than the file: not a prefix of it
        offset = 0
    manual = (
        f"download {entry.url} by hand and place it at {target}"
        + (f" (SHA-256 {entry.sha256})" if entry.sha256 else "")
        + (f" (MD5 {entry.md5})" if entry.md5 and not entry.sha256 else "")
        + ", or set the mirror URL in the config"
    )
    if entry.size is None or offset < entry.size:  # a complete part needs no request
        _download(entry, part, offset, timeout, manual)
    problem, sha = _check(part, entry)
    if problem is not None:
        part.unlink()
        raise DownloadError(f"{entry.name} from {entry.url}: {problem}; removed. {manual}")
    os.replace(part, target)
    _report(entry, sha, target)
    return target


def _download(entry: ManifestEntry, part: Path, offset: int, timeout: float, manual: str):
    request = urllib.request.Request(entry.url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # Only an HTTP 206 continues the part; a file:// or ftp response has no status
            # and ignores the Range header, so it starts over (as does a 200).
            resumed = bool(offset) and getattr(response, "status", None) == 206
            length = response.headers.get("Content-Length")
            with (
                part.open("ab" if resumed else "wb") as fh,
                tqdm(
                    total=(int(length) if length else 0) + (offset if resumed else 0),
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
        raise DownloadError(
            f"{entry.name}: cannot download {entry.url}: {err}. Offline? {manual}"
        ) from err


def _check(path: Path, entry: ManifestEntry) -> tuple[str | None, str | None]:
    """(what is wrong with ``path`` or None, its SHA-256 when it was hashed)."""
    got = path.stat().st_size
    if entry.size is not None and got != entry.size:
        # The size is checked first: a wrong one needs no hashing of a large file.
        return f"size {got} bytes differs from the manifest's {entry.size}", None
    found = file_digests(path, ("sha256", "md5") if entry.md5 is not None else ("sha256",))
    sha, md5 = found["sha256"], found.get("md5")
    if entry.sha256 is not None and sha != entry.sha256:
        return f"SHA-256 {sha} differs from the manifest's {entry.sha256}", sha
    if entry.md5 is not None and md5 != entry.md5:
        return f"MD5 {md5} differs from the manifest's {entry.md5}", sha
    return None, sha


def _report(entry: ManifestEntry, sha: str | None, path: Path) -> None:
    """Print the SHA-256 a manifest should record, when it does not record one yet."""
    if entry.sha256 is not None:
        return
    where = entry.manifest or "the manifest"
    if entry.md5 is not None:
        print(f"{entry.name}: verified by MD5 only; record its SHA-256 in {where}: sha256: {sha}")
    else:
        print(
            f"warning: {path} is UNVERIFIED ({entry.name} has no digest in {where}; "
            f"unverified downloads are allowed). SHA-256 {sha}: check the file, then record "
            f"sha256: {sha} for it there"
        )
