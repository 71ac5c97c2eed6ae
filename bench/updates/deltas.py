"""Delta size for a retrained weights file, through the master's real artifact path.

A YOLOv8 model built from ultralytics' architecture yaml (random weights, no download;
YOLO_OFFLINE=1), its state_dict saved with torch (float32) as ``model.pt`` in a package folder.
Three versions of the package, each stored as the master stores an upload (``ingest_sync``: the
normalised, uncompressed tar in an ArtifactStore):

- v1: the model as built;
- v2: 2 % of the model retrained: random tensors holding 2 % of the parameters get new values
  (a fine-tune of some layers);
- v3: a full fine-tune: every weight changed slightly (w * (1 + 1e-3 * noise)).

The patches v1 -> v2 and v1 -> v3 are built by the master's delta cache (services.master.artifacts
.deltas) in both formats (HDiffPatch through detools, match-blocks, lzma; and tar-xor-zstd,
edge_common.deltas), applied with the agent's code
(edge_ai.agent.fetcher.apply_patch_file) and the result's sha256 checked against the target.

Baselines measured in the same run: the full artifact (what an edge downloads without a patch),
the same artifact gzip-compressed (a compressed transfer), and a patch between the two versions
archived as .tar.gz (the layout the master avoids: compression spreads one change over the rest
of the file).

    YOLO_OFFLINE=1 .venv/bin/python -m bench.updates.deltas [--model yolov8m.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from edge_ai.agent.fetcher import apply_patch_file
from services.master.artifacts.deltas import (
    FORMATS,
    HDIFF,
    XOR,
    DeltaCache,
    UpdateTraffic,
    build_patch,
)
from services.master.packages import ArtifactStore
from services.master.packages.archive import ingest_sync
from services.master.settings import MasterSettings

MANIFEST = (
    'filename: yolobench\nversion: "{version}"\nai_class: "10"\ndescription: bench\n'
    "command: [python, main.py]\nresources: {{cpu: 1, memory_mb: 512}}\n"
)


def build_model(arch: str):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    return YOLO(arch).model.state_dict()


def float_keys(state) -> list[str]:
    return [k for k, t in state.items() if t.is_floating_point() and t.numel() > 0]


def retrain_share(state, share: float, seed: int):
    """Random tensors holding about ``share`` of the parameters get new values."""
    import torch

    rng = random.Random(seed)
    keys = float_keys(state)
    rng.shuffle(keys)
    total = sum(state[k].numel() for k in keys)
    target = share * total
    out = {k: t.clone() for k, t in state.items()}
    changed, tensors = 0, 0
    for k in keys:
        if changed >= 0.95 * target:
            break
        t = out[k]
        if changed + t.numel() > 1.05 * target:
            continue  # would overshoot: a smaller one
        out[k] = t + 0.01 * (t.std() if t.numel() > 1 else 1.0) * torch.randn_like(t)
        changed += t.numel()
        tensors += 1
    return out, tensors, len(keys), changed / total


def fine_tune_all(state, seed: int):
    import torch

    torch.manual_seed(seed)
    out = {}
    for k, t in state.items():
        if t.is_floating_point():
            out[k] = t * (1 + 1e-3 * torch.randn_like(t))
        else:
            out[k] = t.clone()
    return out


def package(root: Path, version: str, state) -> Path:
    import torch

    folder = root / f"pkg-{version}"
    folder.mkdir()
    (folder / "aipackage.yaml").write_text(MANIFEST.format(version=version))
    (folder / "main.py").write_text("print('yolo bench')\n")
    torch.save(state, folder / "model.pt")
    return folder


def targz(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for p in sorted(folder.iterdir()):
            info = tar.gettarinfo(str(p), p.name)
            info.mtime = 0
            with open(p, "rb") as f:
                tar.addfile(info, f)
    return out


def gzip_size(path: Path) -> int:
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=6))


def mb(n: float) -> str:
    return f"{n / 1e6:9.2f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="yolov8m.yaml", help="ultralytics architecture yaml")
    ap.add_argument("--share", type=float, default=0.02, help="share of parameters retrained")
    ap.add_argument("--no-targz", action="store_true", help="skip the .tar.gz baseline")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-deltas-"))
    try:
        t = time.perf_counter()
        v1_state = build_model(args.model)
        v2_state, tensors, n_tensors, share = retrain_share(v1_state, args.share, seed=1)
        v3_state = fine_tune_all(v1_state, seed=2)
        print(f"model {args.model}: {n_tensors} float tensors ({time.perf_counter() - t:.1f} s)")
        print(
            f"v2: {tensors} of {n_tensors} tensors retrained ({100 * share:.2f} % of the "
            "parameters); v3: every weight changed by ~0.1 %"
        )
        folders = {
            "v1": package(root, "01", v1_state),
            "v2": package(root, "02", v2_state),
            "v3": package(root, "03", v3_state),
        }
        store = ArtifactStore(root / "artifacts")
        digests = {name: ingest_sync(folder, store).digest for name, folder in folders.items()}
        full = store.size(digests["v2"])
        print(
            f"model.pt {mb((folders['v1'] / 'model.pt').stat().st_size)}; artifact (tar) {mb(full)}"
        )

        cache = DeltaCache(
            store, UpdateTraffic(CollectorRegistry()), max_ratio=1.0, xor_max_ratio=1.0
        )
        fields = MasterSettings.model_fields  # what the master serves, by format
        limits = {
            HDIFF: fields["delta_max_ratio"].default,
            XOR: fields["delta_xor_max_ratio"].default,
        }
        print(f"\n{'case':<44}{'bytes':>13}{'of full':>9}{'build':>9}{'apply':>9}")
        print(f"{'baseline: full artifact':<44}{mb(full)}{100.0:8.1f}%")
        gz = gzip_size(store.path(digests["v2"]))
        print(f"{'baseline: full artifact, gzip -6':<44}{mb(gz)}{100 * gz / full:8.1f}%")
        for name, label in (
            ("v2", "2 % of tensors retrained"),
            ("v3", "full fine-tune"),
        ):
            for fmt in FORMATS:
                t = time.perf_counter()
                patch = asyncio.run(
                    cache.patch(digests["v1"], digests[name], formats=frozenset({fmt}))
                )
                build_s = time.perf_counter() - t
                assert patch is not None
                out = root / f"applied-{name}"
                t = time.perf_counter()
                got = apply_patch_file(store.path(digests["v1"]), patch, out)
                apply_s = time.perf_counter() - t
                assert f"sha256:{got}" == digests[name], "the patched artifact does not verify"
                size = patch.stat().st_size
                served = (
                    ""
                    if size <= limits[fmt] * store.size(digests[name])
                    else f"  (over {limits[fmt]}: not served)"
                )
                print(
                    f"{f'{fmt}, {label}':<44}{mb(size)}"
                    f"{100 * size / store.size(digests[name]):8.1f}%"
                    f"{build_s:8.1f}s{apply_s:8.1f}s{served}"
                )
                out.unlink()
        if not args.no_targz:
            # The layout avoided: the same two versions as compressed archives.
            a = targz(folders["v1"], root / "v1.tar.gz")
            b = targz(folders["v2"], root / "v2.tar.gz")
            t = time.perf_counter()
            build_patch(a, b, root / "gz.hdiff")
            size = (root / "gz.hdiff").stat().st_size
            print(
                f"{'baseline: delta of .tar.gz, 2 %':<34}{mb(size)}"
                f"{100 * size / b.stat().st_size:8.1f}%{time.perf_counter() - t:8.1f}s"
                f"   (of the {mb(b.stat().st_size).strip()} .tar.gz)"
            )
        print(
            "\ngoal: the 2 % case at most 10 % of the full bytes, the full fine-tune at most 60 % "
            "(the smaller format is served); every patched artifact verified (sha256)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
