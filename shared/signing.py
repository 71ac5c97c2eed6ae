"""Ed25519 signatures for the platform's credentials: setup signs, every other service verifies.

Setup holds the private key(s) (SETUP_SIGNING_KEY_FILES, PEM): the first one signs every new
credential, every one listed verifies. The other services hold public keys only: fetched from
setup's open ``GET /keys`` (cached, re-read every EDGE_PUBLIC_KEYS_REFRESH_S and when a token
names a key id they do not know) and/or given in EDGE_PUBLIC_KEYS. A verifier never holds a
private key, so no service but setup can produce a credential the others accept.

A signed token is ``<body>.<kid>.<signature>``: the Ed25519 signature (base64url, no padding) of
``<body>.<kid>``, where ``kid`` names the key (``k`` + 16 hex digits of the SHA-256 of the raw
public key). Rotation: add a new key first in SETUP_SIGNING_KEY_FILES (new credentials are signed
with it, the old key still verifies), and drop the old one once its credentials are replaced.
One credential is retired alone by its serial (shared.credentials): ``KeyRing.revoked``, listed
by setup on ``GET /keys`` beside the keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger("edge.keys")

ALGORITHM = "Ed25519"
# A token naming an unknown key makes a verifier re-read setup's keys at most this often.
UNKNOWN_KEY_REFETCH_S = 5.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return "k" + hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_text(key: Ed25519PublicKey) -> str:
    """The public key as EDGE_PUBLIC_KEYS and ``GET /keys`` write it (base64url, 32 bytes)."""
    return _b64(raw_public(key))


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key written by ``public_text`` (ValueError otherwise)."""
    try:
        raw = _unb64(text.strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a base64url Ed25519 public key: {text[:20]!r}") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def parse_public_keys(text: str | None) -> list[Ed25519PublicKey]:
    """EDGE_PUBLIC_KEYS: comma-separated public keys (an optional ``kid=`` before each is
    checked against the key)."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        kid, value = "", part
        head, sep, tail = part.partition("=")
        if sep and len(head) == 17 and head.startswith("k"):
            kid, value = head, tail
        key = parse_public(value)
        if kid and kid != key_id(key):
            raise ValueError(f"key id {kid} does not match its key ({key_id(key)})")
        out.append(key)
    return out


def generate_private_pem() -> bytes:
    """A new signing key, PEM (PKCS#8, unencrypted: protect the file, mode 0600)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path) -> Path:
    """Writes a new signing key to ``path`` (mode 0600; an existing file is an error)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(generate_private_pem())
    return path


def load_private(data: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key (PEM)")
    return key


def load_private_file(path: str | Path) -> Ed25519PrivateKey:
    return load_private(Path(path).read_bytes())


@dataclass(frozen=True)
class Signer:
    """Setup's signing key (never given to another service)."""

    key: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.key.public_key()

    @property
    def kid(self) -> str:
        return key_id(self.public)

    def sign(self, body: str) -> str:
        signed = f"{body}.{self.kid}"
        return f"{signed}.{_b64(self.key.sign(signed.encode()))}"

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        return cls(load_private_file(path))


class UnknownKey(Exception):
    """A token signed with a key this verifier does not (yet) know."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


# typing's generics: evaluated when the edge agent imports this on Python 3.8. A fetcher answers
# setup's ``GET /keys`` document (its keys and its revoked serials).
Fetcher = typing.Callable[[], typing.Awaitable[object]]


@dataclass
class KeyRing:
    """The public keys a service verifies with (and, in setup only, the signer)."""

    static: list[Ed25519PublicKey] = field(default_factory=list)
    signer: Signer | None = None
    fetched: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    fetcher: Fetcher | None = None
    # Revoked credential serials (shared.credentials) and when each credential expires (unix s):
    # only ever added to (from setup's GET /keys, its pushes, or setup's own table), an entry
    # dropped once its credential has expired anyway.
    revoked: dict[str, int] = field(default_factory=dict)
    # Counts the changes of the fetched keys: what was proved with the keys of an earlier
    # generation (shared.auth.PrincipalCache) is proved again.
    generation: int = 0
    _last_fetch: float = 0.0
    _lock: asyncio.Lock | None = None
    _tasks: set[asyncio.Task[bool]] = field(default_factory=set)
    _keys: dict[str, Ed25519PublicKey] | None = None  # ``keys``, made once per generation

    @property
    def keys(self) -> dict[str, Ed25519PublicKey]:
        if self._keys is None:
            out = {key_id(k): k for k in self.static}
            out.update(self.fetched)
            if self.signer is not None:
                out.setdefault(self.signer.kid, self.signer.public)
            self._keys = out
        return self._keys

    def verify(self, token: str) -> str | None:
        """The body of a token signed by one of our keys, or None (not signed this way, or a bad
        signature). Raises UnknownKey for a well-formed token naming a key we do not know."""
        signed, _, signature = token.rpartition(".")
        body, _, kid = signed.rpartition(".")
        if not body or not kid.startswith("k") or len(kid) != 17 or len(signature) != 86:
            return None
        key = self.keys.get(kid)
        if key is None:
            self._fetch_soon(kid)
            raise UnknownKey(kid)
        try:
            key.verify(_unb64(signature), signed.encode())
        except (InvalidSignature, ValueError):
            return None
        return body

    def _fetch_soon(self, kid: str) -> None:
        """A synchronous caller met an unknown key: read setup's keys in the background."""
        if self.fetcher is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.refresh(unknown=kid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def is_revoked(self, serial: str) -> bool:
        return serial in self.revoked

    def revoke(self, entries: typing.Mapping[str, int], now: float | None = None) -> None:
        """Adds revoked serials ({serial: expires_at}); drops those of expired credentials."""
        self.revoked.update(entries)
        moment = time.time() if now is None else now
        for serial in [s for s, expires in self.revoked.items() if expires <= moment]:
            del self.revoked[serial]

    def document(self) -> dict[str, typing.Any]:
        """What ``GET /keys`` answers: the public keys, the signing one first, and the revoked
        serials of credentials not yet expired."""
        keys = self.keys
        order = sorted(keys, key=lambda kid: kid != (self.signer.kid if self.signer else ""))
        now = time.time()
        return {
            "keys": [
                {"kid": kid, "alg": ALGORITHM, "public_key": public_text(keys[kid])}
                for kid in order
            ],
            "revoked": [
                {"serial": serial, "expires_at": expires}
                for serial, expires in sorted(self.revoked.items())
                if expires > now
            ],
        }

    def replace_fetched(self, keys: Iterable[Ed25519PublicKey]) -> None:
        fetched = {key_id(k): k for k in keys}
        if fetched.keys() != self.fetched.keys():
            self.generation += 1
        self.fetched = fetched
        self._keys = None

    async def refresh(self, *, unknown: str | None = None) -> bool:
        """Re-reads the keys from setup (when this ring fetches them); for an unknown key id at
        most every UNKNOWN_KEY_REFETCH_S. True when the keys were read."""
        if self.fetcher is None:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if unknown is not None:
                if unknown in self.keys:
                    return True  # another request fetched it meanwhile
                if time.monotonic() - self._last_fetch < UNKNOWN_KEY_REFETCH_S:
                    return False
            self._last_fetch = time.monotonic()
            try:
                body = await self.fetcher()
                keys = keys_from_document(body)
                revoked = revoked_from_document(body)
            except Exception as exc:
                log.warning("setup's public keys unavailable, keeping %d: %s", len(self.keys), exc)
                return False
            self.replace_fetched(keys)
            self.revoke(revoked)
            return True


def keys_from_document(body: object) -> list[Ed25519PublicKey]:
    """The keys of a ``GET /keys`` answer (each checked against its key id)."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise ValueError("not a key document: {keys: [...]} expected")
    out = []
    for entry in body["keys"]:
        key = parse_public(str(entry["public_key"]))
        if entry.get("kid") != key_id(key):
            raise ValueError(f"key id {entry.get('kid')} does not match its key")
        out.append(key)
    return out


def revoked_from_document(body: object) -> dict[str, int]:
    """The revoked serials of a ``GET /keys`` answer ({serial: expires_at}; none listed: {})."""
    if not isinstance(body, dict):
        raise ValueError("not a key document: {keys: [...], revoked: [...]} expected")
    return {str(e["serial"]): int(e["expires_at"]) for e in body.get("revoked") or []}
