"""Image references: ``[host[:port]/]repository[:tag][@sha256:...]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import Invalid

_REPO = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        s = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @classmethod
    def parse(cls, text: str, field: str = "image") -> ImageRef:
        rest, at, after = text.partition("@")
        digest = after if at else None
        host = None
        first, _, remainder = rest.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            host, rest = first, remainder
        tag = None
        last_slash = rest.rfind("/")
        if ":" in rest[last_slash + 1 :]:
            rest, tag = rest.rsplit(":", 1)
        if not _REPO.match(rest):
            raise Invalid(f"{text!r}: {rest!r} is not a valid image repository name", field=field)
        if tag is not None and not _TAG.match(tag):
            raise Invalid(f"{text!r}: {tag!r} is not a valid image tag", field=field)
        if digest is not None and not _DIGEST.match(digest):
            raise Invalid(f"{text!r}: {digest!r} is not a sha256 digest", field=field)
        return cls(host, rest, tag, digest)


def image_name(registry_host: str, filename: str, ai_class: str, version: str) -> ImageRef:
    """The field's naming: ``{registry}/{filename}-{ai_class}:{version}``."""
    ref = ImageRef(registry_host, f"{filename}-{ai_class}", version)
    if not _REPO.match(ref.repository):
        raise Invalid(f"{ref.repository!r} is not a valid image repository name", field="filename")
    if not _TAG.match(version):
        raise Invalid(f"{version!r} is not a valid image tag", field="version")
    return ref
