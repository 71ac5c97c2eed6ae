"""What a package's wheelhouse says about the machines it runs on.

`edgectl ai pack` leaves the wheels of a package's requirements in its wheelhouse: all of them in
the wheelhouse itself when every one is pure Python (``none-any``: one set for every machine), or
one complete set per architecture in ``<wheelhouse>/<architecture>/`` (``wheels/arm64``,
``wheels/amd64``) when one of them carries native code. The master reads that at upload into the
manifest it stores (``architectures``, ``native_code``), refuses a layout the agent would not
read as meant, and refuses to deploy a package with wheels for some architectures only to an
agent whose reported architecture is not one of them (services.master.drivers.agent).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_common.platforms import ARCHITECTURES, is_native, wheel_architecture
from shared.errors import Invalid

from .manifest import PackageManifest

FIELD = "manifest.wheelhouse"


def wheel_platforms(wheelhouse: str, paths: Iterable[str]) -> tuple[list[str], bool]:
    """(architectures, native code) of the wheels under ``wheelhouse`` among the package's file
    ``paths``: the architectures are those of the folders per architecture, or, with none, of the
    native wheels in the wheelhouse itself; none (any machine) for pure wheels only. Invalid
    naming the wheel when a wheel lies in a folder that is not an architecture's, when a native
    wheel lies beside folders per architecture, or in the folder of another architecture."""
    prefix = wheelhouse.rstrip("/") + "/"
    folders: set[str] = set()
    top_native: set[str] = set()
    native = False
    for path in paths:
        if not path.startswith(prefix) or not path.endswith(".whl"):
            continue
        rel = path[len(prefix) :]
        folder, _, name = rel.rpartition("/")
        try:
            own = is_native(name)
            arch = wheel_architecture(name)
        except ValueError as exc:
            raise Invalid(f"{path}: {exc}", field=FIELD) from None
        native = native or own
        if folder:
            if folder not in ARCHITECTURES:
                raise Invalid(
                    f"{path}: the wheelhouse's folders are named by architecture "
                    f"({', '.join(ARCHITECTURES)}), not {folder!r}",
                    field=FIELD,
                )
            if own and arch != folder:
                raise Invalid(
                    f"{path} is for {arch or 'another platform'}, not {folder}", field=FIELD
                )
            folders.add(folder)
        elif own:
            if arch is None:
                raise Invalid(f"{path} is for no Linux machine the platform knows", field=FIELD)
            top_native.add(arch)
    if folders and top_native:
        raise Invalid(
            f"native wheels for {', '.join(sorted(top_native))} lie in {wheelhouse}/ beside "
            f"its folders per architecture: they go in {wheelhouse}/<architecture>/ "
            "(edgectl ai pack --platform does that)",
            field=FIELD,
        )
    return sorted(folders or top_native), native


def with_wheel_platforms(manifest: PackageManifest, paths: Iterable[str]) -> PackageManifest:
    """The manifest with ``architectures`` and ``native_code`` as its wheelhouse says."""
    if not manifest.wheelhouse:
        return manifest.model_copy(update={"architectures": [], "native_code": False})
    archs, native = wheel_platforms(manifest.wheelhouse, paths)
    return manifest.model_copy(update={"architectures": archs, "native_code": native})
