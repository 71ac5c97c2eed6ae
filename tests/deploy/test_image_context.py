"""The Dockerfile's build context (the repository less .dockerignore) installs as the image
installs it: the package builds from exactly those files, and the wheel carries what the
services need at run time (migrations, templates, the edgectl entry point). No Docker engine
here: `pip wheel` on the same context stands in for the image's `pip install /tmp/src`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def dockerignore_patterns() -> list[re.Pattern]:
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not used (and not emulated here)"
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append(re.compile(regex.rstrip("/") + r"\Z"))
    return patterns


def ignored(relative: str, patterns: list[re.Pattern]) -> bool:
    """Docker's rule: a path is out if it, or a folder it is in, matches a pattern."""
    parts = relative.split("/")
    return any(p.match("/".join(parts[:n])) for n in range(1, len(parts) + 1) for p in patterns)


def build_context(dest: Path) -> list[str]:
    patterns = dockerignore_patterns()
    copied = []
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = [d for d in dirs if not ignored(rel_root + d, patterns)]
        for name in files:
            rel = rel_root + name
            if ignored(rel, patterns):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(root) / name, target)
            copied.append(rel)
    return copied


def test_dockerignore_emulation_follows_docker_rules():
    patterns = [re.compile(r"tests\Z"), re.compile(r"(?:.*/)?__pycache__\Z")]
    assert ignored("tests/deploy/x.py", patterns)
    assert not ignored("services/tests.py", patterns)
    assert ignored("services/vms/__pycache__/a.pyc", patterns)


@pytest.fixture(scope="module")
def context_and_wheel(tmp_path_factory) -> tuple[list[str], zipfile.ZipFile]:
    ctx = tmp_path_factory.mktemp("context")
    wheels = tmp_path_factory.mktemp("wheels")
    copied = build_context(ctx)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(wheels),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = list(wheels.glob("edge_platform-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        yield copied, zf


def test_context_holds_no_secrets_tests_or_local_state(context_and_wheel):
    copied, _ = context_and_wheel
    assert "pyproject.toml" in copied and "README.md" in copied
    for rel in copied:
        assert not rel.startswith((".git/", ".venv/", "tests/", ".env", "data/", ".edge-data/")), (
            rel
        )
        assert "__pycache__" not in rel, rel


def test_wheel_has_what_the_services_need_at_run_time(context_and_wheel):
    _, wheel = context_and_wheel
    names = set(wheel.namelist())
    services = [
        p.name for p in (REPO / "services").iterdir() if (p / "migrations" / "env.py").exists()
    ]
    assert services
    for service in services:
        assert f"services/{service}/migrations/env.py" in names
        assert f"services/{service}/migrations/script.py.mako" in names
        versions = [
            n
            for n in names
            if n.startswith(f"services/{service}/migrations/versions/") and n.endswith(".py")
        ]
        assert versions, f"{service}'s migration revisions are not in the image"
    for module in (
        "edgectl/main.py",
        "edgectl/services_cmd.py",
        "shared/settings.py",
        "edge_ai/agent/cli.py",
    ):
        assert module in names, module
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert re.search(
        r"^edgectl = edgectl\.main:run$", wheel.read(entry_points).decode(), flags=re.M
    )
