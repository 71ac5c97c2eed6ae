"""Unpacking is where a hostile package would escape its directory: each trick refused by name."""

from __future__ import annotations

import io
import re
import stat
import tarfile
import zipfile

import pytest

from edge_ai.agent.unpack import UnsafePackage, unpack

LIMITS = dict(max_files=100, max_bytes=1_000_000)


def tar_with(members: list[tarfile.TarInfo], tmp_path):
    path = tmp_path / "p.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" * info.size if info.isfile() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name, *, kind=tarfile.REGTYPE, size=1, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(
    "members, problem",
    [
        ([member("/abs.py")], "absolute path"),
        ([member("a/../../up.py")], "'..'"),
        ([member("lnk", kind=tarfile.SYMTYPE, link="../../etc/passwd")], "points outside"),
        ([member("lnk", kind=tarfile.SYMTYPE, link="/etc/passwd")], "points outside"),
        ([member("hard", kind=tarfile.LNKTYPE, link="../x")], "points outside"),
        ([member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
        ([member(f"f{i}") for i in range(101)], "more than 100 files"),
        ([member("big", size=1_000_001)], "more than 1000000 bytes"),
    ],
)
def test_hostile_tar_members_are_refused(tmp_path, members, problem):
    with pytest.raises(UnsafePackage, match=problem if problem[0] != "'" else "'\\.\\.'"):
        unpack(tar_with(members, tmp_path), tmp_path / "out", **LIMITS)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p.tar.gz"]  # no half-unpacked directory left


def test_a_link_inside_the_package_is_fine(tmp_path):
    path = tar_with(
        [member("lib/real.py"), member("lib/alias.py", kind=tarfile.SYMTYPE, link="real.py")],
        tmp_path,
    )
    out = unpack(path, tmp_path / "out", **LIMITS)
    assert (out / "lib" / "alias.py").resolve() == (out / "lib" / "real.py").resolve()


def test_zip_slip_and_zip_links_are_refused(tmp_path):
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../evil.py", "x")
    with pytest.raises(UnsafePackage, match=re.escape("'..'")):
        unpack(slip, tmp_path / "out", **LIMITS)

    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafePackage, match="points outside"):
        unpack(link, tmp_path / "out", **LIMITS)


def test_a_zip_bomb_stops_at_the_limit(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 50_000
    with pytest.raises(UnsafePackage, match="more than 1000000 bytes"):
        unpack(bomb, tmp_path / "out", **LIMITS)
    assert not (tmp_path / "out").exists()


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"just some bytes, not a package")
    with pytest.raises(UnsafePackage, match="neither a zip nor a tar"):
        unpack(junk, tmp_path / "out", **LIMITS)
