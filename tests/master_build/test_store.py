"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.master.packages import ArtifactStore, StoredArtifact, parse_digest
from shared.errors import Invalid, NotFound


def put_file(store: ArtifactStore, path: Path) -> StoredArtifact:
    with store.writer() as w:
        w.write(path.read_bytes())
        return w.commit()


def test_put_file_addresses_by_sha256_and_dedups(tmp_path: Path, store: ArtifactStore):
    data = b"edge ai package bytes" * 1000
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    first = put_file(store, src)
    assert (first.digest, first.size, first.created) == (digest, len(data), True)
    assert store.path(digest) == store.root / "sha256" / digest.removeprefix("sha256:")
    second = put_file(store, src)
    assert (second.digest, second.created) == (digest, False)
    assert store.digests() == [digest] and list(store.tmp_dir.iterdir()) == []
    with store.open(digest) as f:
        assert f.read() == data
    assert store.exists(digest) and store.size(digest) == len(data)
    assert hashlib.sha256(store.path(digest).read_bytes()).hexdigest() == parse_digest(digest)


def test_delete_and_missing(store: ArtifactStore, tmp_path: Path):
    (tmp_path / "x").write_bytes(b"x")
    d = put_file(store, tmp_path / "x").digest
    assert store.delete(d) is True
    assert store.delete(d) is False
    assert not store.exists(d)
    with pytest.raises(NotFound):
        store.open(d)


def test_writer_failure_leaves_nothing(store: ArtifactStore):
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"half of a package")
        raise RuntimeError("upload broke")
    assert store.digests() == [] and list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(
    "bad", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "G" * 64, "", "sha256:../../etc/passwd"]
)
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
