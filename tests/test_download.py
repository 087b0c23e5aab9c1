"""Verified, resumable, atomic downloads against a local HTTP server (loopback only)."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

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
    from conftest import REPO

    from microgen.data.download import sha256_of

    entries = read_manifest(REPO / "resources" / "manifests" / "uhcsdb.yaml")
    assert entries["microstructures.sqlite"].sha256 == sha256_of(uhcsdb_sqlite)
    mirror = read_manifest(REPO / "resources/manifests/uhcsdb.yaml", base_url="https://m.org/x/")
    assert mirror["micrographs.zip"].url == "https://m.org/x/micrographs.zip"
