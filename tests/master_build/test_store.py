"""The content-addressed artifact store."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.master.packages import ArtifactStore, parse_digest, sha256_file
from shared.errors import Invalid, NotFound, PayloadTooLarge


def test_put_file_addresses_by_sha256_and_dedups(tmp_path: Path, store: ArtifactStore):
    data = b"edge ai package bytes" * 1000
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    first = store.put_file(src)
    assert (first.digest, first.size, first.created) == (digest, len(data), True)
    assert store.path(digest) == store.root / "sha256" / digest.removeprefix("sha256:")
    second = store.put_file(src)
    assert (second.digest, second.created) == (digest, False)
    assert store.digests() == [digest] and list(store.tmp_dir.iterdir()) == []
    with store.open(digest) as f:
        assert f.read() == data
    assert store.exists(digest) and store.size(digest) == len(data)
    assert sha256_file(store.path(digest)) == (digest, len(data))


def test_delete_and_missing(store: ArtifactStore, tmp_path: Path):
    (tmp_path / "x").write_bytes(b"x")
    d = store.put_file(tmp_path / "x").digest
    assert store.delete(d) is True
    assert store.delete(d) is False
    assert not store.exists(d)
    with pytest.raises(NotFound):
        store.open(d)


def test_writer_failure_leaves_nothing(store: ArtifactStore):
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.write(b"half of a package")
            raise RuntimeError("upload broke")
    assert store.digests() == [] and list(store.tmp_dir.iterdir()) == []


async def test_put_stream_with_limit(store: ArtifactStore):
    async def body(n: int):
        for _ in range(n):
            yield b"a" * 1000

    ok = await store.put_stream(body(5), max_bytes=10_000)
    assert ok.size == 5000 and store.exists(ok.digest)
    with pytest.raises(PayloadTooLarge):
        await store.put_stream(body(20), max_bytes=10_000)
    assert store.digests() == [ok.digest] and list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "G" * 64, "", "sha256:../../etc/passwd"])
def test_bad_digests_are_refused(store: ArtifactStore, bad: str):
    with pytest.raises(Invalid):
        parse_digest(bad)
    with pytest.raises(Invalid):
        store.exists(bad)


def test_clean_tmp_removes_interrupted_writes(store: ArtifactStore):
    (store.tmp_dir / "w-crashed").write_bytes(b"partial")
    (store.tmp_dir / "stage-crashed").mkdir()
    assert store.clean_tmp() == 2
    assert list(store.tmp_dir.iterdir()) == []


async def test_spool_upload_then_ingest(tmp_path: Path, store: ArtifactStore):
    from services.master.packages import ingest_package, spool_upload

    from .conftest import make_targz, package_files

    data = make_targz(tmp_path / "p.tar.gz", package_files()).read_bytes()

    async def body(limit_chunks: int = 10**9):
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]

    async with spool_upload(body(), store, max_bytes=len(data)) as path:
        pkg = await ingest_package(path, store)
    assert store.digests() == [pkg.digest] and list(store.tmp_dir.iterdir()) == []
    with pytest.raises(PayloadTooLarge) as exc:
        async with spool_upload(body(), store, max_bytes=len(data) - 1):
            pass
    assert exc.value.message == f"the upload is more than {len(data) - 1} bytes, over the archive-size limit"
    assert list(store.tmp_dir.iterdir()) == []
