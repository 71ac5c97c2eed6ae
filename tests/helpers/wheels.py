"""A wheel made in-process (a dependency no index has: the test's own). Its tag may name a
platform (``py3-none-manylinux2014_aarch64``): pip then takes it for that machine only, though
what it holds is Python, so a test tells by its content which machine's wheel was installed."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(
    dest: Path, name: str, version: str, files: dict[str, str], *, tag: str = "py3-none-any"
) -> Path:
    """``dest/{name}-{version}-{tag}.whl`` holding ``files`` (paths inside site-packages), with
    the METADATA, WHEEL and RECORD pip checks."""
    dist = f"{name}-{version}.dist-info"
    content = dict(files)
    content[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    content[f"{dist}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: edge-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    )
    record = []
    for path, text in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    content[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in content.items():
            zf.writestr(path, text)
    return wheel
