"""Issue 22 item 1: a field folder whose Dockerfile installs a dependency with RUN is built by a
real builder (buildah), every instruction carried out, pushed to the registry; the log is kept
and readable; a failing step fails the build with its output; a build can be cancelled; the
layer cache is reused by the next version. Without a builder, the same folder is refused at
upload naming the RUN line, nothing stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

from tests.helpers.containers import ContainerEnv, save_busybox
from tests.helpers.env import OPERATOR_TOKEN
from tests.helpers.processes import edgectl
from tests.helpers.registry import RunningRegistry, skopeo_inspect

DEPENDENCY = "fieldhelper"
MARKER = "fieldhelper-imported-42"


def make_wheel(folder: Path) -> Path:
    """A pure-Python wheel of the package ``fieldhelper`` (the dependency the Dockerfile installs
    with pip, offline: a LAN has no package index)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{DEPENDENCY}-1.0.dist-info"
    files = {
        f"{DEPENDENCY}/__init__.py": f'VALUE = "{MARKER}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {DEPENDENCY}\nVersion: 1.0\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{DEPENDENCY}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


DOCKERFILE = """\
FROM base/debian:bookworm
WORKDIR /app
COPY wheels/ wheels/
RUN pip install --break-system-packages --no-index --find-links wheels fieldhelper
COPY main.py .
CMD ["python3", "main.py"]
"""


def field_folder(package_dir: Path, name: str, dockerfile: str = DOCKERFILE) -> Path:
    folder = package_dir / name
    make_wheel(folder / "wheels")
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "main.py").write_text("import fieldhelper\nprint(fieldhelper.VALUE)\n")
    return folder


async def upload(stack, filename: str, version: str = "01"):  # type: ignore[no-untyped-def]
    return await stack.master.post(
        "/upload_edgeAI", json={"filename": filename, "version": version, "ai_class": "01"}
    )


async def test_a_run_step_is_carried_out_by_buildah_and_the_image_imports_its_dependency(
    build_stack, container_env: ContainerEnv, container_registry: RunningRegistry, base_image: str
) -> None:
    async with build_stack(
        MASTER_BUILDER="buildah", MASTER_BUILD_CA_FILE="/etc/ssl/certs/ca-certificates.crt"
    ) as stack:
        field_folder(stack.package_dir, "fieldapp")
        r = await upload(stack, "fieldapp")
        assert r.status_code == 200, r.text
        ai_id = r.json()["aid"]
        ai = await stack.wait_built(ai_id)
        assert ai["status"] == "ready", ai
        image = ai["image_ref"]
        assert image == f"{container_registry.host}/fieldapp-01:01"

        # The log over HTTP and through edgectl: every step, the RUN step's pip output.
        log = (await stack.master.get(f"/builds/{ai_id}/log")).text
        assert "RUN pip install" in log and f"Successfully installed {DEPENDENCY}" in log, log
        assert f"FROM base/debian:bookworm -> {base_image}" in log
        shown = subprocess.run(
            edgectl("ai", "show", str(ai_id), "--log", "--master-url", stack.master_url),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "EDGE_OPERATOR_TOKEN": OPERATOR_TOKEN},
        )
        assert shown.returncode == 0 and f"Successfully installed {DEPENDENCY}" in shown.stdout

        # What the registry holds runs, and imports the dependency the RUN step installed.
        assert skopeo_inspect(image)["Labels"]["org.edge-ai.filename"] == "fieldapp"
        container_env.podman("pull", "--tls-verify=false", image)
        out = container_env.podman("run", "--rm", image)
        assert out.stdout.strip() == MARKER

        # The next version reuses the cached RUN layer.
        r = await upload(stack, "fieldapp", "02")
        ai2 = await stack.wait_built(r.json()["aid"])
        assert ai2["status"] == "ready", ai2
        log2 = (await stack.master.get(f"/builds/{ai2['id']}/log")).text
        assert "Using cache" in log2, log2

        # A failing step fails the build, with its output.
        field_folder(
            stack.package_dir,
            "broken",
            DOCKERFILE.replace("RUN pip", "RUN echo step-output-before-failing && exit 3 && pip"),
        )
        r = await upload(stack, "broken")
        failed = await stack.wait_built(r.json()["aid"])
        assert failed["status"] == "failed"
        assert "step-output-before-failing" in failed["failure_reason"], failed
        assert "exit 3" in (await stack.master.get(f"/builds/{failed['id']}/log")).text

        # A FROM image the private registry lacks is refused at upload, naming it ...
        jetson = field_folder(
            stack.package_dir,
            "jetson",
            'FROM nvcr.io/nvidia/l4t-base:r35.4.1\nRUN echo on-l4t > /base\nCMD ["cat", "/base"]\n',
        )
        r = await upload(stack, "jetson")
        assert r.status_code == 422, r.text
        message = r.json()["message"]
        assert "line 1: FROM nvcr.io/nvidia/l4t-base:r35.4.1" in message, message
        assert f"{container_registry.host}/nvidia/l4t-base:r35.4.1 is not in" in message
        assert "import-base" in message
        # ... until it is imported from a `podman save` file; then the same upload builds.
        saved = save_busybox(container_env, "nvcr.io/nvidia/l4t-base:r35.4.1", jetson / "l4t.tar")
        imported = subprocess.run(
            edgectl("registry", "import-base", str(saved), "--registry", container_registry.url),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **container_env.env},
        )
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.startswith(f"{container_registry.host}/nvidia/l4t-base:r35.4.1 ")
        saved.unlink()
        r = await upload(stack, "jetson")
        assert r.status_code == 200, r.text
        built = await stack.wait_built(r.json()["aid"])
        assert built["status"] == "ready", built["failure_reason"]

        # A running build is cancelled: the AI fails saying so, the builder process is gone.
        field_folder(
            stack.package_dir, "slow", DOCKERFILE.replace("RUN pip", "RUN sleep 120 && pip")
        )
        r = await upload(stack, "slow")
        slow_id = r.json()["aid"]
        for _ in range(120):
            if "sleep 120" in (await stack.master.get(f"/builds/{slow_id}/log")).text:
                break
            await asyncio.sleep(0.5)
        cancelled = await stack.master.post(f"/builds/{slow_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        slow = await stack.wait_built(slow_id, timeout=30)
        assert slow["status"] == "failed" and "cancelled" in slow["failure_reason"]
        for _ in range(40):  # buildah takes its step's container down as it stops
            left = subprocess.run(["pgrep", "-f", "sleep 120"], capture_output=True, text=True)
            if not left.stdout.strip():
                break
            await asyncio.sleep(0.5)
        assert left.stdout.strip() == "", "the cancelled build's step still runs"


async def test_without_a_builder_a_run_step_is_refused_at_upload_naming_the_line(
    build_stack,
) -> None:
    async with build_stack() as stack:
        field_folder(stack.package_dir, "fieldapp")
        r = await upload(stack, "fieldapp")
        assert r.status_code == 422, r.text
        message = r.json()["message"]
        assert "Dockerfile line 4: RUN pip install" in message, message
        assert "MASTER_BUILDER=buildah" in message and "MASTER_DOCKER_HOST" in message
        # Nothing stored, nothing recorded.
        assert list((stack.artifact_dir / "sha256").iterdir()) == []
        assert (await stack.setup.get("/ai-packages")).json()["items"] == []
        # Setup's route (it asks the master about the folder first) is refused the same way.
        r = await stack.setup.post(
            "/request_upload_edgeAi",
            json={"filename": "fieldapp", "version": "01", "ai_class": "01"},
        )
        assert r.status_code == 422 and "RUN pip install" in r.json()["message"], r.text
