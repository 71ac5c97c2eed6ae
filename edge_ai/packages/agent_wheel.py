"""The edge agent as a wheel of its own (``edgectl edge build-agent --out DIR``): what a box
without the platform installs, ``pip install edge_agent-<version>-py3-none-any.whl``, on Python
3.8 (JetPack 5) or newer; then ``edge-agent --node ... --port ...`` (or ``python -m
edge_ai.agent``).

It holds the agent (``edge_ai.agent``, with ``edge_ai.common``: its HTTP client),
``edge_common`` and the modules of ``shared`` the agent imports (``AGENT_SHARED``); its metadata
says ``Requires-Python: >=3.8`` and requires what ``edge_ai/requirements-edge.txt`` lists. Not
for an environment that has the platform installed (both carry ``shared``). The same sources
give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from edge_ai.agent import AGENT_VERSION

EDGE_AI_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = EDGE_AI_DIR.parent
REQUIREMENTS = EDGE_AI_DIR / "requirements-edge.txt"
REQUIRES_PYTHON = ">=3.8"
NAME = "edge_agent"
# What the agent imports from shared (tests/edge_ai/test_python38.py checks the wheel needs
# nothing else).
AGENT_SHARED = (
    "__init__",
    "agent_keys",
    "api_docs",
    "auth",
    "contracts/__init__",
    "contracts/live_view",
    "contracts/updates",
    "credentials",
    "edge_tokens",
    "errors",
    "http_errors",
    "input_checks",
    "legacy",
    "logging",
    "mqtt",
    "settings",
    "signing",
)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def requirements() -> list[str]:
    """The Requires-Dist lines: edge_ai/requirements-edge.txt without its comments."""
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line]


def _sources() -> dict[str, bytes]:
    files: dict[str, bytes] = {"edge_ai/__init__.py": (EDGE_AI_DIR / "__init__.py").read_bytes()}
    for folder in (EDGE_AI_DIR / "agent", EDGE_AI_DIR / "common", REPO_DIR / "edge_common"):
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[path.relative_to(REPO_DIR).as_posix()] = path.read_bytes()
    for module in AGENT_SHARED:
        files[f"shared/{module}.py"] = (REPO_DIR / "shared" / f"{module}.py").read_bytes()
    return files


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_agent_wheel(out_dir: Path) -> Path:
    """Write the wheel into ``out_dir``; returns its path."""
    dist_info = f"{NAME}-{AGENT_VERSION}.dist-info"
    files = _sources()
    metadata = [
        "Metadata-Version: 2.1",
        "Name: edge-agent",
        f"Version: {AGENT_VERSION}",
        "Summary: The edge agent: runs the platform's AI workloads on an edge box",
        f"Requires-Python: {REQUIRES_PYTHON}",
        *(f"Requires-Dist: {r}" for r in requirements()),
    ]
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: edge-platform\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = (
        b"[console_scripts]\nedge-agent = edge_ai.agent.__main__:main\n"
    )
    record = f"{dist_info}/RECORD"
    lines = [f"{name},{_record_hash(data)},{len(data)}" for name, data in sorted(files.items())]
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}-{AGENT_VERSION}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            wheel.writestr(info, files[name])
    path.write_bytes(buffer.getvalue())
    return path
