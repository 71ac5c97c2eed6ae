"""Build the AI package archives from ``edge_ai/packages/<dir>``.

Each source folder holds the package's own files (``aipackage.yaml`` at its root, Dockerfile,
edgeconfig.xml, requirements.txt, models/...). The build adds the program code the manifest's
command names: ``python -m edge_ai.weather`` brings ``edge_ai/__init__.py``, ``edge_ai/common``,
``edge_common`` and ``edge_ai/weather``, so the command runs from the unpacked folder as it is.
Archives are gzip tars with the files at their root, sorted, with fixed owners and times: the same
sources give the same bytes. Name: ``{filename}-{ai_class}-{version}.tar.gz``.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

PACKAGES_DIR = Path(__file__).resolve().parent
EDGE_AI_DIR = PACKAGES_DIR.parent
EDGE_COMMON_DIR = EDGE_AI_DIR.parent / "edge_common"  # stdlib only: redaction, log lines
DETECTORS_DIR = EDGE_AI_DIR.parent / "detectors"  # the detector package, with the demo model
USES_DETECTORS = ("yolo",)
FIXED_MTIME = 315532800  # 1980-01-01
_SKIP = {"__pycache__", ".pytest_cache"}


class PackageBuildError(Exception):
    """A package source cannot be built (the message names the folder and the problem)."""


@dataclass(frozen=True)
class BuiltPackage:
    path: Path
    filename: str
    version: str
    ai_class: str
    condition: str | None


def package_sources() -> list[Path]:
    return sorted(p for p in PACKAGES_DIR.iterdir() if (p / "aipackage.yaml").is_file())


def _program_module(command: list[str], where: Path) -> str:
    if len(command) >= 3 and command[0] in ("python", "python3") and command[1] == "-m":
        module = command[2]
        if module.startswith("edge_ai.") and (EDGE_AI_DIR / module.split(".")[1]).is_dir():
            return module.split(".")[1]
    raise PackageBuildError(f"{where}: command must be python -m edge_ai.<program>, got {command}")


def _files(root: Path, prefix: str) -> dict[str, Path]:
    """Archive name -> file, skipping caches and compiled files."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP for part in rel.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        out[f"{prefix}{rel.as_posix()}"] = path
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_package(source: Path, out_dir: Path, *, yolo_weights: Path | None = None) -> BuiltPackage:
    manifest_path = source / "aipackage.yaml"
    try:
        manifest = yaml.safe_load(manifest_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PackageBuildError(f"{manifest_path}: {exc}") from None
    program = _program_module(manifest.get("command") or [], manifest_path)
    files = _files(source, "")
    files.update({"edge_ai/__init__.py": EDGE_AI_DIR / "__init__.py"})
    files.update(_files(EDGE_AI_DIR / "common", "edge_ai/common/"))
    files.update(_files(EDGE_COMMON_DIR, "edge_common/"))
    files.update(_files(EDGE_AI_DIR / program, f"edge_ai/{program}/"))
    if program in USES_DETECTORS:
        files.update(_files(DETECTORS_DIR, "detectors/"))
    overrides: dict[str, bytes] = {}
    if yolo_weights is not None and program == "yolo":
        # Real weights replace the random-weight architecture: the file goes under models/ and
        # the manifest's YOLO_MODEL and models list point at it.
        if not yolo_weights.is_file():
            raise PackageBuildError(f"{yolo_weights}: weights file not found")
        name = f"models/{yolo_weights.name}"
        files[name] = yolo_weights
        manifest = dict(manifest)
        manifest["env"] = {
            **manifest.get("env", {}),
            "YOLO_MODEL_NAME": yolo_weights.stem,
        }
        manifest["models"] = [name]
        manifest["detector"] = {
            **{k: v for k, v in (manifest.get("detector") or {}).items() if k == "labels"},
            "model": name,
            # A .pt keeps the ultralytics backend; an ONNX file is read as a YOLOv8/YOLO11
            # export unless the manifest's source says otherwise.
            **({"layout": "yolov8"} if yolo_weights.suffix == ".onnx" else {}),
        }
        overrides["aipackage.yaml"] = yaml.safe_dump(
            manifest, sort_keys=False, allow_unicode=True
        ).encode()
    for declared in manifest.get("models") or []:
        if declared not in files:
            raise PackageBuildError(f"{manifest_path}: model {declared} is not in the package")
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = (
        out_dir / f"{manifest['filename']}-{manifest['ai_class']}-{manifest['version']}.tar.gz"
    )
    tmp = archive.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(
        fileobj=raw, mode="wb", mtime=FIXED_MTIME, filename=""
    ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(set(files) | set(overrides)):
            data = overrides.get(name)
            if data is None:
                data = files[name].read_bytes()
            _add(tar, name, data)
    tmp.replace(archive)
    return BuiltPackage(
        archive,
        manifest["filename"],
        manifest["version"],
        manifest["ai_class"],
        manifest.get("condition"),
    )


def build_all(
    out_dir: Path, *, only: list[str] | None = None, yolo_weights: Path | None = None
) -> list[BuiltPackage]:
    sources = package_sources()
    if only:
        unknown = set(only) - {s.name for s in sources}
        if unknown:
            raise PackageBuildError(
                f"no package source named {', '.join(sorted(unknown))} "
                f"(have: {', '.join(s.name for s in sources)})"
            )
        sources = [s for s in sources if s.name in only]
    return [build_package(s, out_dir, yolo_weights=yolo_weights) for s in sources]


def unpack(archive: Path, dest: Path) -> Path:
    """For tests and by-hand runs: the archive unpacked as the edge agent would."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest
