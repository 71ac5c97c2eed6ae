"""The AI package manifest (``aipackage.yaml`` or ``aipackage.toml`` at the archive root).

Example::

    filename: monitoring
    version: "02"
    ai_class: "01"
    condition: SUNNY
    description: people counting, daylight variant
    command: ["python", "main.py", "--config", "edgeconfig.xml"]
    env: {MODEL_PATH: models/best.pt}
    resources: {cpu: 1.5, memory_mb: 1024, gpu: 0}
    dockerfile: Dockerfile          # optional
    models: [models/best.pt]        # optional, each must exist in the archive
    detector:                       # optional: the detection model, loaded and checked at upload
      model: models/best.onnx       # .onnx (onnxruntime) or .pt/.yaml (ultralytics)
      layout: yolov8                # yolov8 | yolox | detr (ONNX only)
      imgsz: 640
      labels: coco                  # or a list, or a .yaml/.txt file in the package
    hot_handoff: true               # optional: see PackageManifest.hot_handoff
    requirements: ["httpx>=0.27"]   # optional: Python dependencies the edge agent installs
    wheelhouse: wheels              # optional: folder of wheels shipped for them (edgectl ai pack)
    # architectures, native_code: set by the master at upload from the wheelhouse (packages.wheels)

Every error raised here is ``shared.errors.Invalid`` whose ``field`` is ``manifest.<field>``.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from typing import Any, Literal

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import Invalid
from shared.versions import validate_version

MANIFEST_NAMES = ("aipackage.yaml", "aipackage.toml")

# Used with fullmatch only: ``$`` would also match before a trailing newline, and ``\d`` any
# Unicode digit; the classes are spelled out in ASCII.
_FILENAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_AI_CLASS = re.compile(r"[0-9]{2}")
_CONDITION = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_relative_path(value: str) -> str:
    """A path inside the package: relative, forward slashes, no ``..``; returned normalised."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty relative path")
    if value.startswith("/") or "\\" in value or re.match(r"[A-Za-z]:", value):
        raise ValueError(f"{value!r} must be a relative path inside the package (forward slashes)")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{value}/":
        raise ValueError(f"{value!r} must not contain '..'")
    return norm


def check_requirement(value: str) -> str:
    """One PEP 508 requirement (``name[extras] specifier ; marker``): no pip options (a package
    must not pick the index or install files: the operator names the index), no URLs."""
    text = value.strip()
    if not text or text.startswith("-") or "\x00" in text:
        raise ValueError(f"{value!r} is not a requirement (no pip options: name and version only)")
    try:
        parsed = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{value!r} is not a requirement: {exc}") from None
    if parsed.url:
        raise ValueError(f"{value!r}: a requirement by URL is not installed on edges")
    return text


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(0.5, gt=0, le=256, description="CPU cores the AI needs (fractions allowed)")
    memory_mb: int = Field(512, gt=0, le=1_048_576, description="memory in MiB")
    gpu: int = Field(0, ge=0, le=16, description="GPUs the AI needs")


class DetectorSection(BaseModel):
    """The package's detection model (detectors.ModelSpec): the master loads an ONNX model at
    upload and checks its inputs and outputs against ``layout``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="relative path of the model file in the package")
    backend: Literal["onnxruntime", "ultralytics"] | None = Field(
        None, description="default from the suffix: .onnx onnxruntime; .pt, .yaml ultralytics"
    )
    layout: Literal["yolov8", "yolox", "detr"] | None = Field(
        None, description="output layout of an ONNX model (default yolov8)"
    )
    imgsz: int | None = Field(
        None, ge=32, le=4096, description="input size (a multiple of 32); checked against the model"
    )
    labels: str | list[str] | None = Field(
        None, description="class names: a list, coco, or the relative path of a .yaml/.txt file"
    )

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from detectors.spec import infer_backend

        path = check_relative_path(v)
        if infer_backend(path) is None:
            raise ValueError(f"{v!r}: expected an .onnx, .pt or .yaml model file")
        return path

    @field_validator("imgsz")
    @classmethod
    def _imgsz(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"{v} must be a multiple of 32")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, str) and v != "coco":
            return check_relative_path(v)
        return v

    @property
    def resolved_backend(self) -> str:
        from detectors.spec import infer_backend

        return self.backend or infer_backend(self.model) or "onnxruntime"


class PackageManifest(BaseModel):
    """What an AI package declares about itself."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(
        description="lowercase name: letters, digits and '-', at most 40 characters"
    )
    version: str = Field(description="dotted numbers: 01, 2, 1.4.10")
    ai_class: str = Field(description="two digits: 00 (environment AI), 01, 02 ...")
    condition: str | None = Field(
        None, description="the condition this variant serves (SUNNY, RAINY) or null"
    )
    description: str = Field("", max_length=2000)
    command: list[str] = Field(
        min_length=1, description="argv; a leading python/python3 runs with the agent's interpreter"
    )
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    dockerfile: str | None = Field(None, description="relative path of a Dockerfile in the package")
    models: list[str] = Field(
        default_factory=list,
        description="relative paths of model files that must be in the package",
    )
    detector: DetectorSection | None = Field(
        None, description="the detection model the program loads (YOLO worker)"
    )
    hot_handoff: bool = Field(
        False,
        description="the running program also analyses the cameras of the edges its edge helps "
        "(live param help_for, camera URLs in the live secrets file): an overload hand-off to "
        "an edge already running it starts no process (the YOLO worker does)",
    )

    requirements: list[str] = Field(
        default_factory=list,
        description="Python requirements (PEP 508, as in requirements.txt) the edge agent installs "
        "into an environment of this package version before starting it; a field folder's "
        "requirements.txt / `RUN pip install` lines are read into it at upload",
    )
    wheelhouse: str | None = Field(
        None,
        description="relative path of a folder of wheels in the package the agent installs the "
        "requirements from (no index needed; `edgectl ai pack` downloads them)",
    )
    architectures: list[str] = Field(
        default_factory=list,
        description="the CPU architectures (amd64, arm64) the wheelhouse has wheels for: its "
        "folders per architecture, else the machines of its native wheels; empty: any. The "
        "package is deployed to an edge agent only where this is empty or holds the edge's. Set "
        "by the master at upload from the wheels (a value written by hand is replaced)",
    )
    native_code: bool = Field(
        False,
        description="a wheel in the wheelhouse is not pure Python (not none-any). Set by the "
        "master at upload",
    )

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str) -> str:
        if not _FILENAME.fullmatch(v):
            raise ValueError(
                f"{v!r} must be 1-40 characters of lowercase letters, digits and '-', "
                "not starting or ending with '-'"
            )
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # YAML reads `version: 01` as the integer 1; the leading zero matters in the field.
            raise ValueError(
                'quote the version in the manifest (version: "01"), numbers lose leading zeros'
            )
        if not isinstance(v, str):
            raise ValueError("must be a string of dotted numbers")
        try:
            return validate_version(v)
        except Invalid as exc:
            raise ValueError(exc.message) from None

    @field_validator("ai_class", mode="before")
    @classmethod
    def _ai_class(cls, v: Any) -> str:
        if not isinstance(v, str) or not _AI_CLASS.fullmatch(v):
            raise ValueError(f'{v!r} must be two digits such as "00" or "01" (quoted in YAML)')
        return v

    @field_validator("condition")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        if v is not None and not _CONDITION.fullmatch(v):
            raise ValueError(f"{v!r} must be an uppercase word such as SUNNY or RAINY, or null")
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("must not contain NUL characters")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("the program (first element) must not be empty")
        if any("\x00" in a for a in v):
            raise ValueError("arguments must not contain NUL characters")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if "\x00" in value:
                raise ValueError(f"{name}: values must not contain NUL characters")
        return v

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, v: str | None) -> str | None:
        return None if v is None else check_relative_path(v)

    @field_validator("wheelhouse")
    @classmethod
    def _wheelhouse(cls, v: str | None) -> str | None:
        return None if v is None else check_relative_path(v)

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, v: list[str]) -> list[str]:
        for item in v:
            check_requirement(item)
        return [item.strip() for item in v]

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return [check_relative_path(p) for p in v]

    @property
    def repository(self) -> str:
        """Image repository name, as the field names images: ``{filename}-{ai_class}``."""
        return f"{self.filename}-{self.ai_class}"

    def uses_agent_python(self) -> bool:
        """True when the agent should run the command with its own interpreter."""
        return self.command[0] in ("python", "python3")


def parse_manifest(data: bytes, name: str = "aipackage.yaml") -> PackageManifest:
    """Parse and validate manifest bytes; every failure is ``Invalid`` naming
    ``manifest.<field>``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{name} is not UTF-8 text", field="manifest") from None
    try:
        raw = tomllib.loads(text) if name.endswith(".toml") else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        detail = str(exc).replace("\n", " ").strip()
        raise Invalid(
            f"{name} is not valid {'TOML' if name.endswith('.toml') else 'YAML'}: {detail}",
            field="manifest",
        ) from None
    if not isinstance(raw, dict):
        raise Invalid(
            f"{name} must be a mapping of fields (filename, version, ai_class, command ...)",
            field="manifest",
        )
    try:
        return PackageManifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a manifest field"
        raise Invalid(f"{name}: {loc}: {msg}", field=f"manifest.{loc}") from None
