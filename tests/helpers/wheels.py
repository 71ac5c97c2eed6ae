"""A pure-Python wheel made in-process (a dependency no index has: the test's own)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(dest: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """``dest/{name}-{version}-py3-none-any.whl`` holding ``files`` (paths inside site-packages),
    with the METADATA, WHEEL and RECORD pip checks."""
    dist = f"{name}-{version}.dist-info"
    content = dict(files)
    content[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    content[f"{dist}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: edge-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    content[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in content.items():
            zf.writestr(path, text)
    return wheel
