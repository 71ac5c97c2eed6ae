"""Uploading AI packages through the master's HTTP API (in-process master, setup as a real process):
stored once, recorded in setup, built; every bad package refused with its own message and
nothing stored, neither in the artifact store nor in setup."""

from __future__ import annotations

import hashlib
import logging
import os

import httpx
import pytest

from services.master.app import create_app
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, SERVICE, settings_for
from tests.master.helpers import package_files, targz, write_folder, zipped


@pytest.fixture
async def master(db, setup_service, tmp_path):
    settings = settings_for(
        "master",
        db,
        setup_url=setup_service,
        artifact_dir=tmp_path / "artifacts",
        package_dir=tmp_path / "packages",
        reconcile_on_start=False,
        reconcile_seconds=3600,
        notify_optimizer=False,
        max_upload_bytes=200_000,
    )
    async with running_app(create_app(settings)) as client:
        client.settings = settings  # type: ignore[attr-defined]
        client.setup = httpx.AsyncClient(base_url=setup_service, headers=OPERATOR)  # type: ignore[attr-defined]
        yield client
        await client.setup.aclose()  # type: ignore[attr-defined]


def stored(client) -> list[str]:
    root = client.settings.artifact_dir
    return sorted(p.name for p in (root / "sha256").iterdir())


def leftovers(client) -> list[str]:
    return sorted(p.name for p in (client.settings.artifact_dir / "tmp").iterdir())


async def setup_ais(client) -> list[dict]:
    r = await client.setup.get("/ai-packages")
    return r.json()["items"]


async def wait_build(client, ai_id: int) -> dict:
    r = await client.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)
    assert r.status_code == 200, r.text
    return r.json()["ai"]


async def test_raw_body_upload_is_stored_recorded_and_built(master):
    body = targz(package_files(version="01"))
    r = await master.post(
        "/ai-packages?filename=monitoring&version=01&ai_class=01",
        content=body,
        headers={**OPERATOR, "Content-Type": "application/gzip"},
    )
    assert r.status_code == 202, r.text
    out = r.json()
    assert (
        out["stored"] is True
        and out["ai"]["filename"] == "monitoring"
        and out["ai"]["condition"] == "SUNNY"
    )
    digest = out["package_digest"]
    assert stored(master) == [digest.split(":")[1]]

    ai = await wait_build(master, out["ai"]["id"])
    assert ai["status"] == "ready" and ai["package_digest"] == digest
    assert ai["manifest"]["command"] == ["python", "main.py"] and ai["manifest"]["env"] == {
        "GREETING": "hello"
    }
    assert ai["image_ref"] is None  # no registry configured: agents run the artifact

    # The agent's fetch: the stored bytes, verified by their digest; services only.
    r = await master.get(f"/artifacts/{digest}", headers=SERVICE)
    assert r.status_code == 200 and "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
    assert (await master.get(f"/artifacts/{digest}", headers=OPERATOR)).status_code == 403
    assert (await master.get(f"/artifacts/{digest}")).status_code == 401
    assert (await master.get("/artifacts/sha256:abc", headers=SERVICE)).status_code == 422
    assert (await master.get("/artifacts/sha256:" + "0" * 64, headers=SERVICE)).status_code == 404

    got = (await master.get(f"/ai-packages/{ai['id']}", headers=OPERATOR)).json()
    assert got["build"]["state"] == "ready" and got["build"]["attempts"] == 1


async def test_multipart_upload_and_the_same_bytes_stored_once(master):
    body = zipped(package_files(version="01", ai_class="02", condition="RAINY"))
    r = await master.post(
        "/ai-packages", files={"archive": ("m.zip", body, "application/zip")}, headers=OPERATOR
    )
    assert r.status_code == 202, r.text
    first = r.json()
    await wait_build(master, first["ai"]["id"])
    # The same package again (same names): nothing new stored, the AI row reused.
    r = await master.post(
        "/ai-packages", files={"archive": ("m.zip", body, "application/zip")}, headers=OPERATOR
    )
    assert r.status_code == 202, r.text
    again = r.json()
    assert again["package_digest"] == first["package_digest"] and again["stored"] is False
    assert (
        again["ai"]["id"] == first["ai"]["id"]
        and again["ai"]["status"] == "ready"
        and again["build"] == "ready"
    )
    assert len(stored(master)) == 1 and len(await setup_ais(master)) == 1


async def test_other_content_under_the_names_of_a_ready_ai_is_a_conflict(master):
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    await wait_build(master, r.json()["ai"]["id"])
    changed = package_files()
    changed["extra.txt"] = "other content"
    r = await master.post("/ai-packages", content=targz(changed), headers=OPERATOR)
    assert r.status_code == 409 and r.json()["error"]["field"] == "version"
    assert len(stored(master)) == 1 and leftovers(master) == []


BAD = {
    "no manifest": ({"main.py": "print(1)"}, 422, "aipackage.yaml", "manifest"),
    "zip slip": ({**package_files(), "../evil.py": "x"}, 422, "'..'", "archive"),
    "absolute path": ({**package_files(), "/etc/cron.d/x": "x"}, 422, "absolute", "archive"),
    "bad manifest": (
        {"aipackage.yaml": "filename: Monitoring\nversion: '01'\nai_class: '01'\ncommand: [x]\n"},
        422,
        "lowercase",
        "manifest.filename",
    ),
    "missing model": (
        {
            "aipackage.yaml": package_files()["aipackage.yaml"] + "models: [best.pt]\n",
            "main.py": "",
        },
        422,
        "best.pt",
        "manifest.models.0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_every_bad_package_is_refused_with_its_message_and_nothing_stored(master, case):
    files, code, text, field = BAD[case]
    r = await master.post(
        "/ai-packages",
        content=targz(files),
        headers={**OPERATOR, "Content-Type": "application/gzip"},
    )
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert text in err["message"] and err["field"] == field, err
    assert stored(master) == [] and leftovers(master) == [] and await setup_ais(master) == []


async def test_names_that_disagree_with_the_manifest_are_refused(master):
    r = await master.post(
        "/ai-packages?version=02", content=targz(package_files(version="01")), headers=OPERATOR
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "version"
    assert "does not match" in r.json()["error"]["message"]
    assert stored(master) == [] and await setup_ais(master) == []


async def test_oversized_and_empty_uploads_and_auth(master):
    # Random content, so gzip cannot shrink it under the 200 kB limit.
    big = targz({**package_files(), "blob.bin": os.urandom(300_000)})
    r = await master.post("/ai-packages", content=big, headers=OPERATOR)
    assert r.status_code == 413
    r = await master.post("/ai-packages", content=b"", headers=OPERATOR)
    assert r.status_code == 422 and r.json()["error"]["field"] == "archive"
    r = await master.post("/ai-packages", content=b"not an archive at all", headers=OPERATOR)
    assert r.status_code == 422 and "neither a zip nor a tar.gz" in r.json()["error"]["message"]
    assert (await master.post("/ai-packages", content=targz(package_files()))).status_code == 401
    assert stored(master) == [] and leftovers(master) == [] and await setup_ais(master) == []


async def test_field_upload_from_the_package_folder_and_removal(master, caplog):
    caplog.set_level(logging.INFO, logger="edge.master.removal")
    write_folder(
        master.settings.package_dir / "weatherai",
        package_files("weatherai", "01", "00", condition=None),
    )
    r = await master.post(
        "/upload_edgeAI",
        data={"filename": "weatherai", "version": "01", "ai_class": "00"},
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    aid = r.json()["aid"]
    ai = await wait_build(master, aid)
    assert ai["status"] == "ready"
    digest = ai["package_digest"]
    assert stored(master) == [digest.split(":")[1]]

    r = await master.post(
        "/upload_edgeAI",
        json={"filename": "nothere", "version": "01", "ai_class": "00"},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and r.json()["code"] == "1001" and "nothere" in r.json()["message"]

    r = await master.post("/remove_edgeAI", data={"id": str(aid)}, headers=OPERATOR)
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    assert "artifact deleted" in r.json()["message"]
    assert stored(master) == []
    assert (await master.setup.get(f"/ai-packages/{aid}")).json()["status"] == "removed"
    # Setup's own call to /ai-packages/{id}/remove after its commit: the clean-up ran once, the
    # call is answered what it did.
    r = await master.post(f"/ai-packages/{aid}/remove", headers=SERVICE)
    assert r.status_code == 200 and r.json() == {"id": aid, "image": "none", "artifact": "deleted"}
    cleanups = [m for m in caplog.messages if m.startswith(f"AI {aid} removed:")]
    assert len(cleanups) == 1, cleanups


async def test_build_from_the_folder_when_setup_records_the_upload(master):
    """The field's way through setup: setup records the names and asks the master to build."""
    write_folder(
        master.settings.package_dir / "monitoring", package_files("monitoring", "03", "01")
    )
    r = await master.setup.post(
        "/request_upload_edgeAi", json={"filename": "monitoring", "version": "03", "ai_class": "01"}
    )
    assert r.json()["code"] == "0000"
    ai = await wait_build(master, r.json()["aid"])
    assert ai["status"] == "ready" and ai["manifest"]["version"] == "03"
    # A folder whose manifest says another version: the build fails, saying why.
    r = await master.setup.post(
        "/request_upload_edgeAi", json={"filename": "monitoring", "version": "04", "ai_class": "01"}
    )
    ai = await wait_build(master, r.json()["aid"])
    assert ai["status"] == "failed" and "does not match" in ai["failure_reason"]


# --- issue 16 -------------------------------------------------------------------------------


def _targz_with_manifest_symlink() -> bytes:
    import io
    import tarfile

    files = package_files()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in (
            ("real.yaml", files["aipackage.yaml"]),
            ("main.py", files["main.py"]),
        ):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("aipackage.yaml")
        link.type, link.linkname = tarfile.SYMTYPE, "real.yaml"
        tar.addfile(link)
    return buf.getvalue()


async def test_manifest_symlink_is_refused_promptly_and_leaves_no_upload_file(master):
    import asyncio

    r = await asyncio.wait_for(
        master.post("/ai-packages", content=_targz_with_manifest_symlink(), headers=OPERATOR), 15
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {
        **r.json()["error"],
        "field": "manifest",
        "message": "aipackage.yaml must be a regular file, not a symlink",
    }
    assert stored(master) == [] and leftovers(master) == [] and await setup_ais(master) == []


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ({"ai_class": "01\\n"}, "manifest.ai_class"),
        ({"version": "\\u0660\\u0665"}, "manifest.version"),
        ({"filename": "monitoring\\n"}, "manifest.filename"),
    ],
)
async def test_names_the_patterns_used_to_let_through_are_refused_before_storing(
    master, names, field
):
    r = await master.post("/ai-packages", content=targz(package_files(**names)), headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert stored(master) == [] and leftovers(master) == [] and await setup_ais(master) == []
    # Nothing recorded either: the same names uploaded right are a first upload.
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    assert r.status_code == 202 and r.json()["stored"] is True


async def test_entries_the_file_system_refuses_are_named(master):
    name = "models/" + "a" * 300 + ".bin"
    r = await master.post(
        "/ai-packages", content=targz({**package_files(), name: "x"}), headers=OPERATOR
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "archive" and name in err["message"]
    assert stored(master) == [] and leftovers(master) == []


async def test_artifact_digest_with_an_encoded_newline_is_refused(master):
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    digest = r.json()["package_digest"]
    r = await master.get(f"/artifacts/{digest}%0a", headers=SERVICE)
    assert r.status_code == 422 and r.json()["error"]["field"] == "digest"
    r = await master.get(f"/artifacts/{digest}%0A%0D", headers=SERVICE)
    assert r.status_code == 422


async def test_a_manifest_description_setup_cannot_store_is_refused_before_storing(master):
    files = package_files()
    files["aipackage.yaml"] = files["aipackage.yaml"].replace(
        "description: test program", 'description: "test\\0program"'
    )
    r = await master.post("/ai-packages", content=targz(files), headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "manifest.description"
    assert stored(master) == [] and leftovers(master) == [] and await setup_ais(master) == []


def detector_package(detector: str, version: str = "01") -> dict[str, str | bytes]:
    from detectors.demo import DEMO_MODEL

    files = package_files(version=version)
    files["aipackage.yaml"] += f"detector:\n{detector}"
    files["models/demo.onnx"] = DEMO_MODEL.read_bytes()
    return files


@pytest.mark.parametrize(
    ("detector", "field", "text"),
    [
        ("  model: models/demo.onnx\n  layout: yolox\n", "layout", "do not match layout yolox"),
        ("  model: models/demo.onnx\n  imgsz: 320\n", "imgsz", "input is 640 px"),
        ("  model: models/other.onnx\n", "model", "not in the package"),
        ("  model: models/demo.onnx\n  labels: [a, b]\n", "labels", "80 classes"),
        ("  model: models/demo.onnx\n  layout: ssd\n", "layout", "yolov8"),
    ],
)
async def test_a_detector_that_does_not_match_its_manifest_is_refused(
    master, detector, field, text
):
    """The master loads the package's ONNX model and holds it against the declared layout, input
    size and labels: a mismatch is a 422 naming the manifest field, nothing stored."""
    r = await master.post(
        "/ai-packages",
        content=targz(detector_package(detector)),
        headers={**OPERATOR, "Content-Type": "application/gzip"},
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == f"manifest.detector.{field}" and text in err["message"], err
    assert stored(master) == [] and leftovers(master) == []


async def test_a_detector_that_matches_is_accepted(master):
    detector = "  model: models/demo.onnx\n  layout: yolov8\n  imgsz: 640\n  labels: coco\n"
    r = await master.post(
        "/ai-packages",
        content=targz(detector_package(detector)),
        headers={**OPERATOR, "Content-Type": "application/gzip"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["stored"] is True and len(stored(master)) == 1
