"""A full fine-tune travels as a weight-aware patch (issue 24 item 3): real setup and master
processes, the agent's own fetcher.

A package's float32 weights are all changed slightly (every weight x (1 + 1e-3 noise), what a
fine-tune of every layer does). HDiffPatch finds almost nothing to reuse, so an older agent
(HDiffPatch only) downloads the whole archive; the agent of today asks for both formats and gets
the ``tar-xor-zstd`` patch, at most 60 % of the archive, applied and verified by sha256. An edge
that reports too little memory to apply an HDiffPatch patch is never sent one; a damaged patch of
this format does not give the archive back (the fetcher's sha256 check then fetches it whole).
"""

from __future__ import annotations

import hashlib

import httpx
import numpy as np

from edge_ai.agent.fetcher import PackageFetcher
from edge_common import deltas as xor_deltas
from tests.helpers.env import OPERATOR
from tests.updates.test_delta_cache import urls as urls  # the fixture
from tests.updates.test_pull_agent import upload

N_WEIGHTS = 1_500_000  # 6 MB of float32


class Bearer(httpx.Auth):
    def __init__(self, token: str):
        self.token = token

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def versions() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(7)
    old = (rng.standard_normal(N_WEIGHTS) * 0.05).astype(np.float32)
    noise = rng.standard_normal(N_WEIGHTS).astype(np.float32)
    new = (old * (1 + 1e-3 * noise)).astype(np.float32)
    assert np.count_nonzero(old != new) > 0.99 * N_WEIGHTS  # every weight changed
    return old.tobytes(), new.tobytes()


async def test_a_full_fine_tune_travels_as_a_weight_aware_patch(tmp_path, urls):
    setup = httpx.Client(base_url=urls[0], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=urls[1], timeout=120)
    old_model, new_model = versions()
    v1, v2 = upload(master, "01", old_model), upload(master, "02", new_model)
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    body = {"name": "edge-1", "nid": "0x11", "cluster_id": cluster["id"]}
    edge = setup.post("/edges", json=body).json()
    r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": v2["id"]})
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {edge['token']}"}
    d1, d2 = v1["package_digest"], v2["package_digest"]
    full = len(master.get(f"/artifacts/{d2}", headers=auth).content)

    # An older agent (HDiffPatch only): no patch pays, it fetches the whole archive.
    r = master.get(f"/artifacts/{d2}/delta", params={"from": d1}, headers=auth)
    assert r.status_code == 404, r.text
    # Too little memory for HDiffPatch, and it accepts nothing else: no patch either.
    r = master.get(
        f"/artifacts/{d2}/delta",
        params={"from": d1, "formats": "hdiffpatch", "memory": full},
        headers=auth,
    )
    assert r.status_code == 404, r.text
    r = master.get(f"/artifacts/{d2}/delta", params={"from": d1, "formats": "gzip"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "formats"

    # Today's agent: the fetcher it runs, with the version it has in its cache.
    fetcher = PackageFetcher(
        master_url=urls[1],
        auth=Bearer(edge["token"]),
        cache_dir=tmp_path / "edge-cache",
        timeout_s=60,
        max_bytes=1 << 30,
    )
    try:
        # The version the edge ran before (the master's stored archive, byte for byte).
        stored = tmp_path / "artifacts" / "sha256" / d1.removeprefix("sha256:")
        fetcher.path_for(d1).write_bytes(stored.read_bytes())
        path = await fetcher.fetch(d2, base=d1)
        assert fetcher.stats["delta"] == 1 and fetcher.stats["full"] == 0, fetcher.stats
        ratio = fetcher.stats["delta_bytes"] / full
        print(f"full fine-tune: patch {fetcher.stats['delta_bytes']} of {full} bytes ({ratio:.1%})")
        assert ratio <= 0.60
        assert path.read_bytes() == master.get(f"/artifacts/{d2}", headers=auth).content
    finally:
        await fetcher.aclose()

    r = master.get(
        f"/artifacts/{d2}/delta",
        params={"from": d1, "formats": "hdiffpatch,tar-xor-zstd", "memory": 1 << 20},
        headers=auth,
    )
    assert r.status_code == 200 and r.headers["x-delta-format"] == xor_deltas.FORMAT
    assert r.content.startswith(xor_deltas.MAGIC)

    # A damaged patch of this format is refused; the fetcher then takes the whole archive.
    bad = bytearray(r.content)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = bytes(64)
    (tmp_path / "bad.xorz").write_bytes(bytes(bad))
    (tmp_path / "base").write_bytes(fetcher.path_for(d1).read_bytes())
    try:
        xor_deltas.apply(tmp_path / "base", tmp_path / "bad.xorz", tmp_path / "out")
        damaged = tmp_path.joinpath("out").read_bytes() != path.read_bytes()
    except xor_deltas.PatchError:
        damaged = True
    assert damaged


def test_a_resaved_torch_model_is_matched_tensor_by_tensor(tmp_path):
    """A model saved again after a fine-tune is a zip whose size changed (its pickle did) while
    its tensors kept their names and sizes: those travel as XOR, and the result is exact."""
    import io
    import tarfile
    import zipfile

    old_w, new_w = versions()

    def model(pickle: bytes, weights: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pickle)
            z.writestr("archive/data/0", weights)
        return out.getvalue()

    def archive(path, pt: bytes) -> None:
        with tarfile.open(path, "w") as tar:
            for name, data in (("aipackage.yaml", b"filename: m\n"), ("model.pt", pt)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    old_pt, new_pt = model(b"p" * 100, old_w), model(b"q" * 137, new_w)
    assert len(old_pt) != len(new_pt)
    archive(tmp_path / "a.tar", old_pt)
    archive(tmp_path / "b.tar", new_pt)
    kinds = [op[0] for op in xor_deltas.plan(tmp_path / "a.tar", tmp_path / "b.tar")]
    assert kinds.count("xor") == 1
    xor_deltas.build(tmp_path / "a.tar", tmp_path / "b.tar", tmp_path / "p")
    got = xor_deltas.apply(tmp_path / "a.tar", tmp_path / "p", tmp_path / "out.tar")
    assert (tmp_path / "out.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert got == hashlib.sha256((tmp_path / "b.tar").read_bytes()).hexdigest()
    assert (tmp_path / "p").stat().st_size < 0.6 * (tmp_path / "b.tar").stat().st_size
