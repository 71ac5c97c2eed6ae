"""Apply on the edge: time and peak memory of patching a 100 MB file.

The base is --size-mb of random bytes (weights compress no better); the target has --share of it
replaced in a few places (a retrained part). The patch is built with the master's function
(services.master.artifacts.deltas.build_patch) and applied with the agent's
(edge_ai.agent.fetcher.apply_patch_file: detools, streamed from the base and the patch to the
output, sha256 of the result), each step in a fresh Python process whose peak resident memory is
its VmHWM (reset when it starts).

Baselines measured in the same run, each in its own process: Python with the agent's fetcher
imported and nothing done (the floor of the agent's process), and the full-download path's local
work: copying the target file in 1 MiB blocks with its sha256 (what an edge does with a whole
artifact once its bytes arrived; the network time is not counted in either).

    .venv/bin/python -m bench.updates.apply [--size-mb 100] [--share 0.02]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM: this process's peak resident memory (getrusage's maxrss can carry the parent's
    across fork and exec; the peak is reset at the child's start instead)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, paths: list[str]) -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to what this process holds now
    # Each process imports what its side imports: the agent's fetcher, or the master's deltas.
    if mode == "build":
        from services.master.artifacts.deltas import build_patch
    else:
        from edge_ai.agent.fetcher import apply_patch_file

    t = time.perf_counter()
    digest = ""
    if mode == "apply":
        digest = apply_patch_file(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    elif mode == "build":
        build_patch(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    elif mode == "copy":
        h = hashlib.sha256()
        with open(paths[0], "rb") as src, open(paths[1], "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        digest = h.hexdigest()
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "maxrss_mb": peak_rss_mb(), "sha256": digest}))


def run(mode: str, *paths: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.updates.apply", "--child", mode, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--share", type=float, default=0.02, help="share of the bytes changed")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return

    size = args.size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp_name:
        tmp = Path(tmp_name)
        base, target = tmp / "base.bin", tmp / "target.bin"
        data = bytearray(os.urandom(size))
        base.write_bytes(data)
        regions = 8
        chunk = int(size * args.share / regions)
        for k in range(regions):
            start = (2 * k + 1) * size // (2 * regions)
            data[start : start + chunk] = os.urandom(chunk)
        target.write_bytes(data)
        del data
        want = sha256(target)

        built = run("build", base, target, tmp / "patch.hdiff")
        patch_size = (tmp / "patch.hdiff").stat().st_size
        floor = run("none")
        applied = run("apply", base, tmp / "patch.hdiff", tmp / "out.bin")
        assert applied["sha256"] == want, "the patched file does not verify"
        (tmp / "out.bin").unlink()
        copied = run("copy", target, tmp / "copy.bin")
        assert copied["sha256"] == want

        print(
            f"=== patching a {args.size_mb} MiB file, {100 * args.share:.0f} % of it changed in "
            f"{regions} places; patch {patch_size / 1e6:.2f} MB ({100 * patch_size / size:.1f} %)"
        )
        print(f"{'step (own process)':<52}{'time':>9}{'peak RSS':>12}")
        rows = (
            ("baseline: Python + the agent's fetcher, nothing done", floor),
            ("baseline: write + sha256 the whole file (full path)", copied),
            ("apply the patch + sha256 (agent)", applied),
            ("build the patch (master, once per pair)", built),
        )
        for label, r in rows:
            print(f"{label:<52}{r['seconds']:8.2f}s{r['maxrss_mb']:9.0f} MiB")
        print(
            f"apply's memory above the floor: {applied['maxrss_mb'] - floor['maxrss_mb']:.0f} MiB; "
            "the patched file verified (sha256)"
        )


if __name__ == "__main__":
    main()
