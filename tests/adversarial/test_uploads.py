"""Disk fill through Gradio's uploads on a shared server (issue 22 §13): each visitor and everyone
together have an upload quota, checked from the declared length before Gradio stores a byte, and
Gradio's upload cache is swept by age and size."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from studio.cli.serve import serve
from studio.service.uploads import MB, UploadQuota, UploadRefused
from studio.settings import Settings
from tests.adversarial.conftest import Tally
from tests.browser.conftest import free_port

USER, PASSWORD = "artist", "correct horse"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("uploads")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", host="127.0.0.2", port=free_port(), open_browser=False,
                        auth=(USER, PASSWORD), upload_quota_mb=1, upload_total_mb=3)
    _, demo, _ = serve(settings, block=False)
    client = httpx.Client(base_url=f"http://127.0.0.2:{settings.port}", timeout=120)
    assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
    try:
        yield client, Path(demo.GRADIO_CACHE)
    finally:
        client.close()
        demo.close()


def cached_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def test_a_visitor_over_the_upload_quota_is_refused_before_anything_is_stored(shared_server):
    client, cache = shared_server
    tally = Tally("uploads")
    first = client.post("/gradio_api/upload", files={"files": ("a.bin", os.urandom(600_000))})
    assert first.status_code == 200, first.text
    held = cached_bytes(cache)
    for _ in range(8):  # the report's 8 uploads, each over what is left of the 1 MB quota
        response = client.post("/gradio_api/upload", files={"files": ("b.bin", os.urandom(600_000))})
        refused = response.status_code == 413 and "per visitor" in response.json()["detail"]
        tally.tried(refused)
        assert refused, f"{response.status_code}: {response.text[:200]}"
    assert cached_bytes(cache) == held  # nothing more was written
    small = client.post("/gradio_api/upload", files={"files": ("c.bin", b"x" * 1000)})
    assert small.status_code == 200  # what is left of the quota is still usable


def test_the_quota_counts_everyone_and_forgets_after_the_window():
    now = [0.0]
    quota = UploadQuota(Settings(upload_quota_mb=2, upload_total_mb=3, upload_max_age=60), clock=lambda: now[0])
    quota.admit("alice", str(2 * MB))
    with pytest.raises(UploadRefused, match="per visitor"):
        quota.admit("alice", "1")
    quota.admit("bob", str(MB))
    with pytest.raises(UploadRefused, match="upload_total_mb"):
        quota.admit("carol", "1")
    with pytest.raises(UploadRefused) as missing:
        quota.admit("carol", None)
    assert missing.value.status == 413 and "Content-Length" in str(missing.value)
    now[0] = 61.0
    assert quota.admit("carol", str(2 * MB)) == 2 * MB  # the window moved on


def test_the_sweep_deletes_old_uploads_then_the_oldest_over_the_size(tmp_path):
    quota = UploadQuota(Settings(upload_total_mb=1, upload_max_age=3600))
    now = time.time()
    old = tmp_path / "h1" / "old.png"
    ages = {old: 7200, tmp_path / "h2" / "a.png": 30, tmp_path / "h3" / "b.png": 20, tmp_path / "h4" / "c.png": 10}
    for path, age in ages.items():
        path.parent.mkdir()
        path.write_bytes(b"x" * 400_000)
        os.utime(path, (now - age, now - age))
    deleted = quota.sweep(tmp_path, now)
    assert deleted == [old, tmp_path / "h2" / "a.png"]  # too old; then the oldest while over 1 MB
    assert not (tmp_path / "h1").exists() and cached_bytes(tmp_path) == 800_000
