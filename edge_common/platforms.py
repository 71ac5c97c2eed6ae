"""CPU architectures, named once: as the platform names them (``amd64``, ``arm64``: the names of
OCI images and of a package's wheel folders), and as machines and wheel tags spell them
(``x86_64``, ``aarch64``).

A package carries native code when one of its wheels is not ``none-any`` for its platform (a
compiled extension, e.g. ``msgpack-1.1.1-cp38-cp38-manylinux_2_17_aarch64.whl``); such wheels
install only on their own architecture, so `edgectl ai pack --platform` puts them in one folder
per architecture (``wheels/arm64``, ``wheels/amd64``) and the agent installs from its own.

Standard library only, Python 3.8 and newer (the agent imports it on the edge).
"""

from __future__ import annotations

import platform

# The platform's name -> the machine name of wheel tags and ``platform.machine()`` (Linux).
ARCHITECTURES: dict[str, str] = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "armv7l",
    "386": "i686",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# Other spellings of the same machines (macOS says arm64, Windows AMD64, 32-bit x86 i386...).
_ALIASES: dict[str, str] = {
    **{machine: name for name, machine in ARCHITECTURES.items()},
    **{name: name for name in ARCHITECTURES},
    "armv7": "arm",
    "armv8l": "arm",
    "i386": "386",
    "i586": "386",
    "x86": "386",
    "x64": "amd64",
}


def architecture(machine: str | None = None) -> str:
    """The platform's name for ``machine`` (default: this one's ``platform.machine()``):
    ``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``; an unknown machine keeps its own name
    (lowercase)."""
    raw = (machine if machine is not None else platform.machine()).strip().lower()
    return _ALIASES.get(raw, raw)


def wheel_tags(filename: str) -> tuple[str, str, tuple[str, ...]]:
    """(python, abi, platform tags) of a wheel file name (PEP 427:
    ``name-version[-build]-python-abi-platform.whl``, compressed tag sets split on ``.``);
    ValueError when it is not one."""
    if not filename.endswith(".whl"):
        raise ValueError(f"{filename!r} is not a wheel (.whl)")
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"{filename!r} is not a wheel name (name-version-python-abi-platform)")
    return parts[-3], parts[-2], tuple(parts[-1].split("."))


def is_native(filename: str) -> bool:
    """Whether the wheel holds code for one platform (its platform tag is not ``any``)."""
    return any(tag != "any" for tag in wheel_tags(filename)[2])


def wheel_architecture(filename: str) -> str | None:
    """The architecture a native wheel is for (``manylinux_2_17_aarch64`` -> ``arm64``); None for
    a pure wheel (``any``) or one whose tags name no known machine (``win32``...)."""
    found = set()
    for tag in wheel_tags(filename)[2]:
        if tag == "any":
            continue
        # The machine is the tag's tail: manylinux_2_17_x86_64, linux_aarch64, macosx_11_0_arm64.
        for machine in sorted(_ALIASES, key=len, reverse=True):
            if tag.endswith("_" + machine):
                found.add(_ALIASES[machine])
                break
    return found.pop() if len(found) == 1 else None
