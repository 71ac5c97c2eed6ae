"""Package archives: the good forms all give the same stored artifact; every bad package is
refused with its own message, and nothing lands in the artifact store."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.master.packages import ArchiveLimits, ArtifactStore, extract_artifact, ingest_package
from services.master.packages.archive import DEFAULT_LIMITS
from shared.errors import Invalid, PayloadTooLarge

from .conftest import assert_nothing_stored, make_targz, make_zip, package_files

EXPECTED = {"filename": "monitoring", "version": "01", "ai_class": "01"}


async def test_zip_targz_top_folder_and_directory_store_one_artifact(
    tmp_path: Path, store: ArtifactStore
):
    files = package_files()
    tgz = make_targz(tmp_path / "p.tar.gz", files)
    z = make_zip(tmp_path / "p.zip", files)
    top = make_targz(tmp_path / "top.tar.gz", files, prefix="monitoring/")
    folder = tmp_path / "monitoring"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    first = await ingest_package(tgz, store, expected=EXPECTED)
    assert first.created and first.source_format == "tar.gz"
    assert first.manifest.filename == "monitoring" and first.file_count == 3
    assert first.unpacked_size == sum(len(v) for v in files.values())
    for src, fmt in ((z, "zip"), (top, "tar.gz"), (folder, "directory")):
        again = await ingest_package(src, store, expected=EXPECTED)
        assert (again.digest, again.created, again.source_format) == (first.digest, False, fmt)
    assert store.digests() == [first.digest]
    assert list(store.tmp_dir.iterdir()) == []

    # The stored artifact unpacks to the package's files at the root.
    out = tmp_path / "out"
    await extract_artifact(store, first.digest, out)
    for name, data in files.items():
        assert (out / name).read_bytes() == data


async def test_same_bytes_twice_stored_once_and_request_fields_optional(
    tmp_path: Path, store: ArtifactStore
):
    tgz = make_targz(tmp_path / "p.tar.gz", package_files())
    a = await ingest_package(tgz, store)
    b = await ingest_package(tgz, store, expected={"filename": None, "version": "01"})
    assert a.digest == b.digest and a.created and not b.created
    assert len(list(store.sha_dir.iterdir())) == 1


async def test_symlink_inside_package_is_kept(tmp_path: Path, store: ArtifactStore):
    link = tarfile.TarInfo("current.pt")
    link.type, link.linkname = tarfile.SYMTYPE, "models/best.pt"
    tgz = make_targz(tmp_path / "p.tar.gz", package_files(), extra=[link])
    res = await ingest_package(tgz, store)
    out = tmp_path / "out"
    await extract_artifact(store, res.digest, out)
    assert os.readlink(out / "current.pt") == "models/best.pt"
    assert (out / "current.pt").read_bytes() == (out / "models/best.pt").read_bytes()


# --- refusals ---------------------------------------------------------------------------


async def _refused(
    path: Path, store: ArtifactStore, *, kind=Invalid, limits=DEFAULT_LIMITS, expected=None
):
    with pytest.raises(kind) as exc:
        await ingest_package(path, store, limits=limits, expected=expected)
    assert_nothing_stored(store)
    return exc.value


async def test_missing_manifest(tmp_path, store):
    files = package_files()
    del files["aipackage.yaml"]
    err = await _refused(make_targz(tmp_path / "p.tar.gz", files), store)
    assert err.field == "manifest"
    assert err.message.startswith(
        "no manifest: the package needs aipackage.yaml (or aipackage.toml) at its root"
    )


async def test_manifest_in_a_nested_folder_is_not_found(tmp_path, store):
    files = {f"a/b/{k}": v for k, v in package_files().items()}
    err = await _refused(make_zip(tmp_path / "p.zip", files), store)
    assert err.message.startswith("no manifest")


async def test_malformed_yaml(tmp_path, store):
    files = package_files(**{"aipackage.yaml": "filename: monitoring\nversion: [\n"})
    err = await _refused(make_zip(tmp_path / "p.zip", files), store)
    assert err.field == "manifest" and "aipackage.yaml is not valid YAML" in err.message


async def test_bad_manifest_field_is_named(tmp_path, store):
    bad = package_files()["aipackage.yaml"].decode().replace('ai_class: "01"', "ai_class: one")
    err = await _refused(
        make_targz(tmp_path / "p.tar.gz", package_files(**{"aipackage.yaml": bad})), store
    )
    assert err.field == "manifest.ai_class" and "two digits" in err.message


@pytest.mark.parametrize(
    ("key", "value"), [("filename", "monitorings"), ("version", "02"), ("ai_class", "02")]
)
async def test_request_fields_must_match_manifest(tmp_path, store, key, value):
    err = await _refused(
        make_targz(tmp_path / "p.tar.gz", package_files()), store, expected={**EXPECTED, key: value}
    )
    assert err.field == key
    assert err.message == (
        f"{key} {value!r} in the request does not match {key} {EXPECTED[key]!r} "
        "in the package manifest"
    )


async def test_missing_model_file(tmp_path, store):
    files = package_files()
    del files["models/best.pt"]
    err = await _refused(make_targz(tmp_path / "p.tar.gz", files), store)
    assert (
        err.field == "manifest.models.0"
        and "model file 'models/best.pt' named in the manifest is not in the package" in err.message
    )


async def test_absolute_path_tar(tmp_path, store):
    err = await _refused(
        make_targz(tmp_path / "p.tar.gz", package_files(**{"/etc/cron.d/evil": "x"})), store
    )
    assert (
        err.field == "archive"
        and err.message
        == "'/etc/cron.d/evil' is an absolute path; every path must be relative to the package root"
    )


async def test_absolute_path_zip(tmp_path, store):
    err = await _refused(
        make_zip(tmp_path / "p.zip", package_files(**{"/tmp/evil.py": "x"})), store
    )
    assert "'/tmp/evil.py' is an absolute path" in err.message


async def test_dotdot_zip_slip(tmp_path, store):
    err = await _refused(
        make_zip(tmp_path / "p.zip", package_files(**{"models/../../evil.py": "x"})), store
    )
    assert err.message == "'models/../../evil.py' contains '..'; paths must stay inside the package"


async def test_dotdot_tar(tmp_path, store):
    err = await _refused(
        make_targz(tmp_path / "p.tar.gz", package_files(**{"../evil.py": "x"})), store
    )
    assert "contains '..'" in err.message


async def test_symlink_escaping_the_root(tmp_path, store):
    link = tarfile.TarInfo("models/latest.pt")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/shadow"
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[link]), store)
    assert (
        err.message
        == "symlink 'models/latest.pt' points outside the package ('../../../etc/shadow')"
    )


async def test_absolute_symlink(tmp_path, store):
    link = tarfile.TarInfo("passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[link]), store)
    assert err.message == "symlink 'passwd' points outside the package ('/etc/passwd')"


async def test_symlink_chain_escaping_through_another_link(tmp_path, store):
    # each target looks harmless alone; together b resolves to the package's parent
    a = tarfile.TarInfo("models/a")
    a.type, a.linkname = tarfile.SYMTYPE, "."
    b = tarfile.TarInfo("models/b")
    b.type, b.linkname = tarfile.SYMTYPE, "a/../.."
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[a, b]), store)
    assert err.message == "symlink 'models/b' points outside the package ('a/../..')"


async def test_symlink_in_zip_escaping(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files())
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("evil-link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    err = await _refused(path, store)
    assert err.message == "symlink 'evil-link' points outside the package ('/etc/passwd')"


async def test_file_written_through_a_symlink(tmp_path, store):
    link = tarfile.TarInfo("data")
    link.type, link.linkname = tarfile.SYMTYPE, "models"
    tgz = tmp_path / "p.tar.gz"
    make_targz(tgz, package_files(), extra=[link])
    # rebuild with a file under the link name, after it
    with tarfile.open(tmp_path / "q.tar.gz", "w:gz") as out, tarfile.open(tgz) as src:
        for ti in src:
            out.addfile(ti, src.extractfile(ti) if ti.isreg() else None)
        ti = tarfile.TarInfo("data/x.bin")
        ti.size = 1
        out.addfile(ti, io.BytesIO(b"x"))
    err = await _refused(tmp_path / "q.tar.gz", store)
    assert (
        err.message
        == "'data/x.bin' lies under the symlink 'data'; files must not be written through links"
    )


async def test_hard_link(tmp_path, store):
    link = tarfile.TarInfo("hard")
    link.type, link.linkname = tarfile.LNKTYPE, "main.py"
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[link]), store)
    assert err.message == "'hard' is a hard link (to 'main.py'); hard links are not allowed"


async def test_device_file(tmp_path, store):
    dev = tarfile.TarInfo("dev/sda")
    dev.type, dev.devmajor, dev.devminor = tarfile.BLKTYPE, 8, 0
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[dev]), store)
    assert (
        err.message
        == "'dev/sda' is a device file; only regular files, folders and symlinks are allowed"
    )


async def test_fifo(tmp_path, store):
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(), extra=[fifo]), store)
    assert err.message == "'pipe' is a fifo; only regular files, folders and symlinks are allowed"


async def test_oversize_archive(tmp_path, store):
    path = make_targz(tmp_path / "p.tar.gz", package_files(**{"noise.bin": os.urandom(20_000)}))
    size = path.stat().st_size
    err = await _refused(
        path, store, kind=PayloadTooLarge, limits=ArchiveLimits(max_archive_bytes=10_000)
    )
    assert err.message == f"the archive is {size} bytes, over the archive-size limit of 10000 bytes"


async def test_zip_bomb_by_declared_unpacked_size(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files(**{"zeros.bin": b"\0" * 30_000_000}))
    assert path.stat().st_size < 100_000  # compresses ~1000:1
    err = await _refused(
        path, store, kind=PayloadTooLarge, limits=ArchiveLimits(max_unpacked_bytes=10_000_000)
    )
    assert (
        err.message
        == "the archive declares more than 10000000 bytes unpacked, over the unpacked-size limit"
    )


async def test_targz_bomb_by_unpacked_size(tmp_path, store):
    path = make_targz(tmp_path / "p.tar.gz", package_files(**{"zeros.bin": b"\0" * 30_000_000}))
    err = await _refused(
        path, store, kind=PayloadTooLarge, limits=ArchiveLimits(max_unpacked_bytes=10_000_000)
    )
    assert "over the unpacked-size limit" in err.message


def _forge_zip_sizes(path: Path, member: str, fake_size: int) -> None:
    """Rewrite a member's uncompressed size in both its local header and the central directory."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    # local file header: signature PK\3\4, uncompressed size at offset 22
    i = data.find(b"PK\x03\x04" + b"")
    while i != -1:
        n = struct.unpack_from("<H", data, i + 26)[0]
        if data[i + 30 : i + 30 + n] == name:
            struct.pack_into("<I", data, i + 22, fake_size)
        i = data.find(b"PK\x03\x04", i + 4)
    # central directory header: signature PK\1\2, uncompressed size at offset 24
    j = data.find(b"PK\x01\x02")
    while j != -1:
        n = struct.unpack_from("<H", data, j + 28)[0]
        if data[j + 46 : j + 46 + n] == name:
            struct.pack_into("<I", data, j + 24, fake_size)
        j = data.find(b"PK\x01\x02", j + 4)
    path.write_bytes(bytes(data))


async def test_zip_lying_about_its_sizes_is_caught_while_extracting(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files(**{"zeros.bin": b"\0" * 5_000_000}))
    _forge_zip_sizes(path, "zeros.bin", 1000)  # declares 1 kB, holds 5 MB
    err = await _refused(path, store, limits=ArchiveLimits(max_unpacked_bytes=1_000_000))
    assert err.field == "archive"
    assert err.message.startswith("the archive is corrupt at 'zeros.bin'")


async def test_too_many_files(tmp_path, store):
    many = {f"data/{i}.txt": b"x" for i in range(20)}
    err = await _refused(
        make_zip(tmp_path / "p.zip", package_files(**many)),
        store,
        kind=PayloadTooLarge,
        limits=ArchiveLimits(max_files=10),
    )
    assert err.message == "the archive holds more than 10 entries, over the file-count limit"


async def test_not_an_archive(tmp_path, store):
    path = tmp_path / "p.tar.gz"
    path.write_bytes(b"just some text, not an archive\n")
    err = await _refused(path, store)
    assert err.message == "the archive is neither a zip nor a tar.gz (gzip-compressed tar) file"


async def test_truncated_targz(tmp_path, store):
    path = make_targz(tmp_path / "p.tar.gz", package_files(**{"noise.bin": os.urandom(50_000)}))
    path.write_bytes(path.read_bytes()[:30_000])
    err = await _refused(path, store)
    assert err.message.startswith("the tar.gz archive is corrupt") or err.message.startswith(
        "the archive is corrupt"
    )


async def test_duplicate_entries(tmp_path, store):
    path = make_targz(tmp_path / "p.tar.gz", package_files())
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as out, tarfile.open(path) as src:
        for ti in src:
            out.addfile(ti, src.extractfile(ti))
        ti = tarfile.TarInfo("./main.py")
        ti.size = 3
        out.addfile(ti, io.BytesIO(b"bad"))
    err = await _refused(tmp_path / "d.tar.gz", store)
    assert err.message == "'./main.py' appears twice in the archive"


async def test_file_and_folder_with_the_same_name(tmp_path, store):
    err = await _refused(
        make_zip(tmp_path / "p.zip", package_files(**{"lib": "x", "lib/mod.py": "y"})), store
    )
    assert err.message == "'lib/mod.py' lies under 'lib', which is a file"


async def test_targz_bomb_hidden_in_headers_is_caught_by_counting_the_stream(tmp_path, store):
    # No member declares a large size: the bulk hides in a PAX header, which only counting
    # the decompressed stream catches.
    path = tmp_path / "p.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("aipackage.yaml")
        data = package_files()["aipackage.yaml"]
        ti.size = len(data)
        ti.pax_headers = {"comment": "z" * 5_000_000}
        tf.addfile(ti, io.BytesIO(data))
    assert path.stat().st_size < 50_000
    err = await _refused(
        path,
        store,
        kind=PayloadTooLarge,
        limits=ArchiveLimits(max_unpacked_bytes=1_000_000, max_files=100),
    )
    assert err.message == (
        f"the archive unpacks to more than {1_000_000 + 2048 * 116} bytes (tar stream), "
        "over the unpacked-size limit"
    )


# --- issue 16: a non-regular manifest, names the patterns let through, entries the OS refuses ---


async def _refused_within(path: Path, store: ArtifactStore, seconds: float = 10, **kw):
    """A refusal that must come promptly: a StopIteration inside asyncio.to_thread used to hang."""
    import asyncio

    return await asyncio.wait_for(_refused(path, store, **kw), seconds)


async def test_manifest_that_is_a_symlink_is_refused_not_hung(tmp_path, store):
    files = package_files()
    real = files.pop("aipackage.yaml")
    files["real.yaml"] = real
    link = tarfile.TarInfo("aipackage.yaml")
    link.type, link.linkname = tarfile.SYMTYPE, "real.yaml"
    err = await _refused_within(make_targz(tmp_path / "p.tar.gz", files, extra=[link]), store)
    assert err.field == "manifest"
    assert err.message == "aipackage.yaml must be a regular file, not a symlink"


async def test_manifest_that_is_a_folder_in_a_zip_is_refused(tmp_path, store):
    files = package_files()
    del files["aipackage.yaml"]
    path = make_zip(tmp_path / "p.zip", files)
    with zipfile.ZipFile(path, "a") as zf:
        zf.mkdir("aipackage.yaml")
    err = await _refused_within(path, store)
    assert (
        err.field == "manifest"
        and err.message == "aipackage.yaml must be a regular file, not a folder"
    )


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('ai_class: "01"', 'ai_class: "01\\n"', "manifest.ai_class"),
        (
            'ai_class: "01"',
            'ai_class: "\\u0660\\u0661"',
            "manifest.ai_class",
        ),  # Arabic-Indic digits
        ('version: "01"', 'version: "\\u0660\\u0665"', "manifest.version"),
        ('version: "01"', 'version: "1.\\uff12"', "manifest.version"),  # fullwidth 2
        ("filename: monitoring", 'filename: "monitoring\\n"', "manifest.filename"),
        ("condition: SUNNY", 'condition: "SUNNY\\n"', "manifest.condition"),
        ("LOG_LEVEL: info", '"LOG_LEVEL\\n": info', "manifest.env"),
    ],
)
async def test_names_with_a_trailing_newline_or_non_ascii_digits_are_refused(
    tmp_path, store, old, new, field
):
    text = package_files()["aipackage.yaml"].decode()
    assert old in text
    files = package_files(**{"aipackage.yaml": text.replace(old, new)})
    err = await _refused(make_targz(tmp_path / "p.tar.gz", files), store)
    assert err.field == field, err.message


def test_digest_with_a_trailing_newline_is_not_a_digest(store):
    from services.master.packages import parse_digest

    with pytest.raises(Invalid):
        parse_digest("sha256:" + "a" * 64 + "\n")
    with pytest.raises(Invalid):
        store.path("sha256:" + "a" * 64 + "\n")


async def test_path_component_over_255_bytes_is_named(tmp_path, store):
    name = "models/" + "a" * 300 + ".bin"
    err = await _refused(make_targz(tmp_path / "p.tar.gz", package_files(**{name: "x"})), store)
    assert err.field == "archive" and name in err.message and "255 bytes" in err.message


async def test_path_over_the_length_limit_is_named(tmp_path, store):
    name = "/".join(["d" * 200] * 25) + "/f.txt"  # about 5,000 bytes
    err = await _refused(
        make_targz(tmp_path / "p.tar.gz", package_files(**{name: "x"}), prefix=""), store
    )
    assert err.field == "archive" and "bytes long" in err.message and name[:40] in err.message


async def test_nul_in_a_zip_symlink_target_is_named(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files())
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("nul-link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "models/best.pt\x00evil")
    err = await _refused(path, store)
    assert err.field == "archive" and "'nul-link'" in err.message and "NUL" in err.message


def _set_zip_method(path: Path, member: str, method: int) -> None:
    """Rewrite a member's compression method in its local header and the central directory."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for sig, method_at, name_len_at, name_at in (
        (b"PK\x03\x04", 8, 26, 30),
        (b"PK\x01\x02", 10, 28, 46),
    ):
        i = data.find(sig)
        while i != -1:
            n = struct.unpack_from("<H", data, i + name_len_at)[0]
            if data[i + name_at : i + name_at + n] == name:
                struct.pack_into("<H", data, i + method_at, method)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["main.py", "aipackage.yaml"])
async def test_unsupported_zip_compression_method_is_named(tmp_path, store, member):
    path = make_zip(tmp_path / "p.zip", package_files())
    _set_zip_method(path, member, 99)  # 99: AES-encrypted (WinZip), which zipfile cannot read
    err = await _refused(path, store)
    assert (
        err.field == "archive"
        and repr(member) in err.message
        and "compression method 99" in err.message
    )


async def test_zip_needing_an_unknown_format_version_is_refused(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files())
    data = bytearray(path.read_bytes())
    j = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, j + 6, 180)  # "version needed to extract": 18.0
    path.write_bytes(bytes(data))
    err = await _refused(path, store)
    assert err.field == "archive" and err.message.startswith("the zip archive is corrupt")


async def test_zip_whose_member_offsets_point_before_the_file_is_refused(tmp_path, store):
    path = make_zip(tmp_path / "p.zip", package_files())
    data = bytearray(path.read_bytes())
    e = data.rfind(b"PK\x05\x06")
    offset = struct.unpack_from("<I", data, e + 16)[0]
    struct.pack_into("<I", data, e + 16, offset + 100_000)  # every member offset becomes negative
    path.write_bytes(bytes(data))
    err = await _refused(path, store)
    assert err.field == "archive" and "corrupt" in err.message


def test_randomly_corrupted_archives_are_refused_never_a_server_error(tmp_path, store):
    """Seeded byte mutations of a good zip, a tar (then gzipped) and a tar.gz: each is accepted
    or refused with Invalid / PayloadTooLarge; nothing else escapes and nothing is left in tmp/."""
    import gzip
    import random

    from services.master.packages.archive import ingest_sync

    files = package_files()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    bases = [
        make_zip(tmp_path / "p.zip", files).read_bytes(),
        raw.getvalue(),
        make_targz(tmp_path / "p.tar.gz", files).read_bytes(),
    ]
    rng = random.Random(16)
    escaped: list[str] = []
    for i in range(600):
        data = bytearray(bases[i % 3])
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / "fuzz"
        path.write_bytes(gzip.compress(bytes(data)) if i % 3 == 1 else bytes(data))
        try:
            ingest_sync(path, store, limits=ArchiveLimits(max_unpacked_bytes=10_000_000))
        except (Invalid, PayloadTooLarge):
            pass
        except Exception as exc:
            escaped.append(f"case {i}: {type(exc).__name__}: {exc}")
    assert escaped == []
    assert list(store.tmp_dir.iterdir()) == []


# --- wheels per architecture (the agent path) -------------------------------------------------

AARCH64 = "msgpack-1.1.1-cp38-cp38-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
X86_64 = "msgpack-1.1.1-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PURE = "fielddep-1.0-py3-none-any.whl"


def _with_wheels(tmp_path: Path, wheels: list[str]) -> Path:
    manifest = package_files()["aipackage.yaml"].decode()
    manifest += 'requirements: ["msgpack", "fielddep"]\nwheelhouse: wheels\n'
    manifest += "architectures: [s390x]\nnative_code: false\n"  # replaced by what the wheels say
    files = package_files(**{"aipackage.yaml": manifest}, **{f"wheels/{w}": b"PK" for w in wheels})
    return make_targz(tmp_path / "p.tar.gz", files)


@pytest.mark.parametrize(
    ("wheels", "architectures", "native"),
    [
        (
            [f"arm64/{AARCH64}", f"arm64/{PURE}", f"amd64/{X86_64}", f"amd64/{PURE}"],
            ["amd64", "arm64"],
            True,
        ),
        ([f"arm64/{AARCH64}", PURE], ["arm64"], True),  # pure wheels beside the folders
        ([X86_64, PURE], ["amd64"], True),  # a plain `edgectl ai pack` on an x86_64 machine
        ([PURE], [], False),  # pure Python: one set for every machine
    ],
)
async def test_the_wheelhouse_gives_the_architectures_and_whether_it_carries_native_code(
    tmp_path, store, wheels, architectures, native
):
    ingested = await ingest_package(_with_wheels(tmp_path, wheels), store)
    assert ingested.manifest.architectures == architectures
    assert ingested.manifest.native_code is native


@pytest.mark.parametrize(
    ("wheels", "message"),
    [
        ([f"aarch64/{AARCH64}"], "folders are named by architecture (amd64, arm64, "),
        ([f"amd64/{AARCH64}"], f"wheels/amd64/{AARCH64} is for arm64, not amd64"),
        ([f"arm64/{AARCH64}", X86_64], "native wheels for amd64 lie in wheels/ beside"),
        (["msgpack-1.1.1-cp38-cp38-win_amd64.whl.txt"], "holds no wheels"),
        (["msgpack-cp38-cp38-win32.whl"], "is not a wheel name"),
    ],
)
async def test_a_wheelhouse_the_agent_would_misread_is_refused(tmp_path, store, wheels, message):
    err = await _refused(_with_wheels(tmp_path, wheels), store)
    assert err.field == "manifest.wheelhouse" and message in err.message, err.message
