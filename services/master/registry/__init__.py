"""The private registry: Registry API v2 client, daemonless image assembly and push,
optional Docker-engine build, and what edge nodes need to trust the registry."""

from __future__ import annotations

from .client import Manifest, RegistryAuthError, RegistryClient
from .config import RegistryConfig
from .image import PushedImage, build_and_push, delete_image
from .reference import ImageRef, image_name

__all__ = [
    "ImageRef",
    "Manifest",
    "PushedImage",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryConfig",
    "build_and_push",
    "delete_image",
    "image_name",
]
