"""The field's package uploads through setup and the master, both real processes."""

from __future__ import annotations

from tests.field.conftest import field_folder
from tests.helpers.env import SERVICE


async def ais(field) -> list[dict]:
    return (await field.setup.get("/ai-packages")).json()["items"]


async def test_setup_refuses_an_upload_whose_folder_is_not_on_the_master(field):
    """Item 6: setup answered 0000 and the AI turned failed later; now it is refused at once."""
    r = await field.setup.post(
        "/request_upload_edgeAi", json={"filename": "nothere", "version": "01", "ai_class": "00"}
    )
    assert r.status_code == 422 and r.json()["code"] == "1001", r.text
    assert r.json()["message"].startswith("filename:") and "nothere" in r.json()["message"]
    assert await ais(field) == []
    # A folder with neither a manifest nor a Dockerfile cannot be built either.
    (field.package_dir / "empty").mkdir()
    r = await field.setup.post(
        "/request_upload_edgeAi", data={"filename": "empty", "version": "01", "ai_class": "01"}
    )
    assert r.status_code == 422 and "Dockerfile" in r.json()["message"], r.text
    assert await ais(field) == []
    # Once the folder is there, the same request is recorded.
    field_folder(field.package_dir, "nothere")
    r = await field.setup.post(
        "/request_upload_edgeAi", json={"filename": "nothere", "version": "01", "ai_class": "00"}
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    assert [a["filename"] for a in await ais(field)] == ["nothere"]


async def test_field_folder_without_manifest_is_built_from_its_dockerfile(field):
    """Item 7: a Dockerfile and a program, no aipackage.yaml: the manifest is derived."""
    weather = field_folder(
        field.package_dir, "weatherai", cmd='CMD ["python3", "main.py", "--interval", "1"]'
    )
    # Item 8 too: version and ai_class as JSON numbers, as some of the field's scripts send them.
    r = await field.master.post(
        "/upload_edgeAI", json={"filename": "weatherai", "version": 1, "ai_class": 0}
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    ai = (await field.master.get(f"/ai-packages/{r.json()['aid']}")).json()
    assert ai["filename"] == "weatherai" and ai["version"] == "01" and ai["ai_class"] == "00"
    assert sorted(p.name for p in weather.iterdir()) == [
        "Dockerfile",
        "main.py",
    ]  # the folder is left as it is

    # Setup's way: setup records the names, the master builds from the folder.
    field_folder(field.package_dir, "monitoring", cmd="CMD python main.py")
    r = await field.setup.post(
        "/request_upload_edgeAi", json={"filename": "monitoring", "version": 1, "ai_class": 2}
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    built = await field.master.post(
        f"/ai-packages/{r.json()['aid']}/build?wait=true", headers=SERVICE
    )
    assert built.status_code == 200, built.text
    manifest = built.json()["ai"]["manifest"]
    assert manifest["command"] == ["python", "main.py"] and manifest["dockerfile"] == "Dockerfile"
    assert (manifest["filename"], manifest["version"], manifest["ai_class"]) == (
        "monitoring",
        "01",
        "02",
    )

    # A Dockerfile that names no program is refused, saying so.
    field_folder(field.package_dir, "noprogram", cmd="")
    r = await field.master.post(
        "/upload_edgeAI", json={"filename": "noprogram", "version": "01", "ai_class": "01"}
    )
    assert r.status_code == 422 and "CMD or ENTRYPOINT" in r.json()["message"], r.text


async def test_the_folder_check_takes_only_package_names(field):
    """The master's folder check (what setup asks) never looks outside its package directory."""
    for filename in ("..x", "-x", "Weather", "a" * 41):
        r = await field.master.get(
            f"/ai-packages/folders/{filename}",
            params={"version": "01", "ai_class": "00"},
            headers=SERVICE,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "filename", (filename, r.text)
    r = await field.master.get(
        "/ai-packages/folders/weatherai",
        params={"version": "01", "ai_class": "0/"},
        headers=SERVICE,
    )
    assert r.status_code == 422
