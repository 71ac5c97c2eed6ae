"""What importing the edge agent loads: no database code, and no package cycle between the
services' library (``shared``) and the edge programs (``edge_ai``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_agent_imports_no_database_code() -> None:
    proc = _fresh_python(
        "import edge_ai.agent.app, sys; "
        "loaded = [m for m in ('sqlalchemy', 'alembic', 'asyncpg') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    assert proc.returncode == 0, proc.stderr


def test_shared_and_edge_common_never_import_the_edge_programs() -> None:
    proc = _fresh_python(
        "import importlib, pkgutil, sys\n"
        "import shared, edge_common\n"
        "for pkg in (shared, edge_common):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "assert not [m for m in sys.modules if m.startswith('edge_ai')]\n"
        "from edge_common import log_format, redaction\n"
        "assert not [m for m in ('shared', 'edge_ai') if m in dir(log_format) + dir(redaction)]"
    )
    assert proc.returncode == 0, proc.stderr


def test_edge_common_needs_the_standard_library_only() -> None:
    proc = _fresh_python(
        "import sys\n"
        "before = set(sys.modules)\n"
        "import edge_common.log_format, edge_common.redaction, edge_common.vocabulary\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "outside = sorted(m for m in new - {'edge_common'} if m not in sys.stdlib_module_names)\n"
        "assert not outside, outside"
    )
    assert proc.returncode == 0, proc.stderr
