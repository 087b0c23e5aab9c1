"""Verified, resumable, atomic downloads against a local HTTP server (loopback only)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from microgen.data.download import DownloadError, ManifestEntry, fetch, read_manifest

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        RangeHandler.requests.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    RangeHandler.requests = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _entry(url: str, sha256: str | None = None) -> ManifestEntry:
    return ManifestEntry(
        "data.bin", f"{url}/data.bin", sha256 or hashlib.sha256(PAYLOAD).hexdigest()
    )


def test_download_is_verified(server, tmp_path):
    target = fetch(_entry(server), tmp_path / "data.bin")
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    # A verified target is not fetched again.
    fetch(_entry(server), tmp_path / "data.bin")
    assert len(RangeHandler.requests) == 1


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:12345])
    fetch(_entry(server), tmp_path / "data.bin")
    assert RangeHandler.requests == ["bytes=12345-"]
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_wrong_digest_leaves_no_target(server, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256"):
        fetch(_entry(server, sha256="0" * 64), tmp_path / "data.bin")
    assert not (tmp_path / "data.bin").exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_offline_error_names_the_url_and_the_manual_way(tmp_path):
    entry = ManifestEntry("x.sqlite", "http://127.0.0.1:9/x.sqlite", "0" * 64)
    with pytest.raises(DownloadError) as err:
        fetch(entry, tmp_path / "x.sqlite", timeout=2)
    assert "http://127.0.0.1:9/x.sqlite" in str(err.value)
    assert "by hand" in str(err.value) and str(tmp_path / "x.sqlite") in str(err.value)


def test_uhcsdb_manifest_matches_the_real_database(uhcsdb_sqlite):
    from microgen.files import sha256_file as sha256_of

    entries = read_manifest(REPO / "resources" / "manifests" / "uhcsdb.yaml")
    assert entries["microstructures.sqlite"].sha256 == sha256_of(uhcsdb_sqlite)
    mirror = read_manifest(REPO / "resources/manifests/uhcsdb.yaml", base_url="https://m.org/x/")
    assert mirror["micrographs.zip"].url == "https://m.org/x/micrographs.zip"


# --------------------------------------------------------------------------- verification
JUNK = b"<html>404</html>\n"  # 17 bytes: what a dead link saves as "micrographs.zip"
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


class JunkHandler(RangeHandler):
    def do_GET(self):  # noqa: N802
        RangeHandler.requests.append(self.headers.get("Range"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(JUNK)))
        self.end_headers()
        self.wfile.write(JUNK)


@pytest.fixture()
def junk_server():
    RangeHandler.requests = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), JunkHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_junk_file_with_only_an_md5_is_refused(junk_server, tmp_path):
    entry = ManifestEntry("PNG.zip", f"{junk_server}/PNG.zip", None, md5=MD5)
    with pytest.raises(DownloadError, match="MD5") as err:
        fetch(entry, tmp_path / "PNG.zip")
    assert str(err.value).startswith("PNG.zip from ")
    assert hashlib.md5(JUNK).hexdigest() in str(err.value)
    assert _left(tmp_path) == []


def test_md5_only_file_is_verified_and_its_sha256_printed(server, tmp_path, capsys):
    entry = ManifestEntry("data.bin", f"{server}/data.bin", None, md5=MD5, manifest="m.yaml")
    assert fetch(entry, tmp_path / "data.bin").read_bytes() == PAYLOAD
    out = capsys.readouterr().out
    assert f"data.bin: verified by MD5 only; record its SHA-256 in m.yaml: sha256: {SHA}" in out


def test_file_without_a_digest_is_refused_unless_allowed(server, tmp_path, capsys):
    entry = ManifestEntry("micrographs.zip", f"{server}/micrographs.zip", None, manifest="u.yaml")
    with pytest.raises(DownloadError) as err:
        fetch(entry, tmp_path / "micrographs.zip")
    message = str(err.value)
    assert message.startswith(
        "micrographs.zip: no digest (sha256 or md5) recorded for it in u.yaml"
    )
    assert "allow_unverified_downloads: true" in message
    assert RangeHandler.requests == [] and _left(tmp_path) == []  # refused before downloading

    target = fetch(entry, tmp_path / "micrographs.zip", allow_unverified=True)
    assert target.read_bytes() == PAYLOAD
    out = capsys.readouterr().out
    assert "warning:" in out and "UNVERIFIED" in out and "micrographs.zip" in out
    assert f"SHA-256 {SHA}" in out


def test_shipped_uhcsdb_archive_is_refused_without_the_option(tmp_path):
    manifest = REPO / "resources" / "manifests" / "uhcsdb.yaml"
    entry = read_manifest(manifest, base_url="http://127.0.0.1:9")["micrographs.zip"]
    with pytest.raises(DownloadError, match=r"micrographs\.zip: no digest") as err:
        fetch(entry, tmp_path / "micrographs.zip", timeout=2)
    assert str(manifest) in str(err.value)


@pytest.mark.parametrize("size", [len(PAYLOAD) - 1, len(PAYLOAD) + 1])
def test_wrong_size_is_refused_and_nothing_left(server, tmp_path, size):
    entry = ManifestEntry("data.bin", f"{server}/data.bin", SHA, size=size)
    with pytest.raises(DownloadError, match=f"size {len(PAYLOAD)} bytes differs") as err:
        fetch(entry, tmp_path / "data.bin")
    assert str(err.value).startswith("data.bin from ")
    assert _left(tmp_path) == []


def test_right_size_passes(server, tmp_path):
    entry = ManifestEntry("data.bin", f"{server}/data.bin", SHA, size=len(PAYLOAD))
    assert fetch(entry, tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_manifest_reads_md5_and_size():
    entries = read_manifest(REPO / "resources" / "manifests" / "aachen-heerlen.yaml")
    png = entries["PNG.zip"]
    assert png.md5 == "09306cad9a754ae5a963d3f5c67f8f30" and png.size == 1223165391
    assert png.sha256 is None and png.url.endswith("/26094926")
    assert all(len(e.md5) == 32 and e.size for e in entries.values())


# --------------------------------------------------------------------------- local mirrors
@pytest.fixture()
def local_mirror(tmp_path) -> tuple[Path, Path]:
    """A folder holding data.bin and a manifest naming it with its digest and size."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "data.bin").write_bytes(PAYLOAD)
    manifest = tmp_path / "manifest.yaml"
    files = [{"name": "data.bin", "url": "https://unreachable.invalid/1", "sha256": SHA,
              "size": len(PAYLOAD)}]  # fmt: skip
    manifest.write_text(yaml.safe_dump({"base_url": "https://unreachable.invalid", "files": files}))
    return mirror, manifest


@pytest.mark.parametrize("form", ["file_url", "absolute_path", "relative_path"])
def test_local_mirror_downloads_and_verifies(local_mirror, tmp_path, monkeypatch, form):
    mirror, manifest = local_mirror
    monkeypatch.chdir(tmp_path)
    base = {"file_url": mirror.as_uri(), "absolute_path": str(mirror), "relative_path": "mirror"}
    entry = read_manifest(manifest, base_url=base[form])["data.bin"]
    assert entry.url == f"{mirror.as_uri()}/data.bin"  # a mirror replaces the file's own url
    out = tmp_path / "out"
    assert fetch(entry, out / "data.bin").read_bytes() == PAYLOAD
    assert _left(out) == ["data.bin"]


def test_local_mirror_with_a_partial_download_starts_over(local_mirror, tmp_path):
    mirror, manifest = local_mirror
    entry = read_manifest(manifest, base_url=mirror.as_uri())["data.bin"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(b"x" * 999)  # not a prefix: a file:// read ignores Range
    assert fetch(entry, out / "data.bin").read_bytes() == PAYLOAD
    assert _left(out) == ["data.bin"]


def test_local_mirror_with_a_bad_file_is_refused(local_mirror, tmp_path):
    mirror, manifest = local_mirror
    (mirror / "data.bin").write_bytes(JUNK)
    entry = read_manifest(manifest, base_url=str(mirror))["data.bin"]
    with pytest.raises(DownloadError, match="size 17 bytes differs") as err:
        fetch(entry, tmp_path / "out" / "data.bin")
    assert str(err.value).startswith("data.bin from file://")
    assert _left(tmp_path / "out") == []


def test_local_mirror_without_the_file_names_it(local_mirror, tmp_path):
    mirror, manifest = local_mirror
    (mirror / "data.bin").unlink()
    entry = read_manifest(manifest, base_url=str(mirror))["data.bin"]
    with pytest.raises(DownloadError, match="cannot download") as err:
        fetch(entry, tmp_path / "out" / "data.bin")
    assert str(err.value).startswith("data.bin: cannot download file://")


def test_unverified_existing_target_is_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(JUNK)
    assert fetch(_entry(server), tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert RangeHandler.requests == [None]
