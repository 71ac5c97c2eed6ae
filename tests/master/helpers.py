"""Packages and processes for the master's tests."""

from __future__ import annotations

import io
import tarfile
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

# A tiny AI: prints its version every 0.2 s, and appends it to $TICK_FILE when set.
PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    version = os.environ.get("EDGE_AI_VERSION", "?")
    tick_file = os.environ.get("TICK_FILE")
    config = open("edgeconfig.xml").read() if os.path.exists("edgeconfig.xml") else ""
    nid = os.environ.get("EDGE_NODE_ID")
    print("start", version, "nid", nid, "vms-in-config", "<IP>" in config, flush=True)
    while True:
        line = f"v{version} {time.time():.3f}"
        print(line, flush=True)
        if tick_file:
            with open(tick_file, "a") as f:
                f.write(line + "\\n")
        time.sleep(0.2)
    """
)


def manifest_text(
    filename: str, version: str, ai_class: str, *, condition: str | None = "SUNNY", extra: str = ""
) -> str:
    cond = f"condition: {condition}\n" if condition else ""
    return (
        f'filename: {filename}\nversion: "{version}"\nai_class: "{ai_class}"\n{cond}'
        "description: test program\ncommand: [python, main.py]\n"
        "env: {GREETING: hello}\nresources: {cpu: 0.1, memory_mb: 64}\n" + extra
    )


def package_files(
    filename: str = "monitoring", version: str = "01", ai_class: str = "01", **kw
) -> dict[str, str | bytes]:
    return {"aipackage.yaml": manifest_text(filename, version, ai_class, **kw), "main.py": PROGRAM}


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def targz(files: dict[str, str | bytes], *, raw_names: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def eventually(
    check: Callable[[], object],
    *,
    timeout: float = 30,
    interval: float = 0.2,
    what: str = "condition",
):
    """Poll until ``check()`` returns something truthy; its last value or error is in the
    failure."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last!r}")
