"""A Registry HTTP API v2 client (distribution / OCI distribution spec), async on httpx.

Auth follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the configured
credentials; ``Bearer realm=..,service=..,scope=..`` fetches a token from the realm (with the
credentials when the realm is trusted) and caches it per scope until it expires.
Credentials and tokens never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from shared.errors import NotFound, Unavailable, UpstreamError

from .config import RegistryConfig

log = logging.getLogger("edge.master.registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
UPLOAD_CHUNK_READ = 1 << 20


class RegistryAuthError(UpstreamError):
    """The registry refused our credentials (or we have none and it wants some)."""


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def _registry_error(resp: httpx.Response) -> str:
    try:
        errs = resp.json().get("errors") or []
        parts = [
            f"{e.get('code', '?')}: {e.get('message', '')}" for e in errs if isinstance(e, dict)
        ]
        if parts:
            return "; ".join(parts)
    except ValueError:
        pass
    return (resp.text or "")[:200].strip() or resp.reason_phrase


class RegistryClient:
    """One client per registry; use as ``async with RegistryClient(config) as reg: ...``."""

    def __init__(
        self, config: RegistryConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            verify=config.verify(),
            timeout=httpx.Timeout(config.timeout_s, connect=10),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "edge-ai-master"},
        )
        self._basic: str | None = None  # set once the registry asked for Basic
        self._tokens: dict[str, tuple[str, float]] = {}  # scope key -> (header value, expiry)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- auth ----------------------------------------------------------------------------
    def _basic_header(self) -> str:
        if not self.config.has_credentials():
            raise RegistryAuthError(
                f"the registry {self.config.host} requires credentials and none are configured"
            )
        raw = f"{self.config.username}:{self.config.password.get_secret_value()}".encode()  # type: ignore[union-attr]
        return "Basic " + base64.b64encode(raw).decode()

    def _auth_for(self, scopes: tuple[str, ...]) -> str | None:
        cached = self._tokens.get(" ".join(scopes))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        return self._basic

    def _realm_trusted(self, realm: str) -> bool:
        # Credentials may travel to the realm over TLS, or in clear only to the registry's own
        # machine (any port) or to a host the operator listed.
        parts = urlsplit(realm)
        if parts.scheme == "https":
            return True
        registry_host = urlsplit(self.config.base_url).hostname
        return (
            parts.hostname == registry_host
            or parts.hostname in self.config.token_realm_hosts
            or parts.netloc in self.config.token_realm_hosts
        )

    async def _fetch_token(self, params: dict[str, str], scopes: tuple[str, ...]) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError("the registry's Bearer challenge names no token realm")
        wanted = list(dict.fromkeys([*scopes, *params.get("scope", "").split()]))
        query: list[tuple[str, str | int | float | bool | None]] = [
            ("scope", s) for s in wanted if s
        ]
        if params.get("service"):
            query.append(("service", params["service"]))
        headers = {}
        if self.config.has_credentials():
            if self._realm_trusted(realm):
                headers["Authorization"] = self._basic_header()
            else:
                log.warning(
                    "token realm %s is plain HTTP on another host; asking for an anonymous token",
                    realm,
                )
        try:
            resp = await self._http.get(realm, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the registry's token service at {urlsplit(realm).netloc} "
                f"is unreachable: {type(exc).__name__}"
            ) from None
        if resp.status_code in (401, 403):
            raise RegistryAuthError(
                f"the registry's token service refused the credentials ({resp.status_code})"
            )
        if resp.status_code != 200:
            raise UpstreamError(f"the registry's token service answered {resp.status_code}")
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise UpstreamError("the registry's token service answered without a token")
        ttl = float(body.get("expires_in") or 60)
        value = f"Bearer {token}"
        # Renew a little early so a token never expires mid-upload.
        self._tokens[" ".join(scopes)] = (value, time.monotonic() + max(ttl - 10, ttl / 2))
        return value

    async def _request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | Callable[[], AsyncIterator[bytes]] | None = None,
        ok: tuple[int, ...] = (200,),
        passthrough: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send, answering one auth challenge; raise a domain error on anything not in
        ok/passthrough."""
        for attempt in range(2):
            hdrs = dict(headers or {})
            auth = self._auth_for(scopes)
            if auth:
                hdrs["Authorization"] = auth
            body = content() if callable(content) else content
            try:
                resp = await self._http.request(
                    method, url, headers=hdrs, params=params, content=body
                )
            except httpx.HTTPError as exc:
                raise Unavailable(
                    f"the registry at {self.config.host} is unreachable: {type(exc).__name__}"
                ) from None
            if resp.status_code == 401 and attempt == 0:
                scheme, challenge = _parse_challenge(resp.headers.get("www-authenticate", ""))
                if scheme == "basic":
                    self._basic = self._basic_header()
                elif scheme == "bearer":
                    await self._fetch_token(challenge, scopes)
                else:
                    raise RegistryAuthError(
                        f"the registry asks for an unsupported auth scheme {scheme!r}"
                    )
                continue
            if resp.status_code in ok or resp.status_code in passthrough:
                return resp
            path, detail = urlsplit(str(resp.url)).path, _registry_error(resp)
            if resp.status_code in (401, 403):
                raise RegistryAuthError(
                    f"the registry refused {method} {path} ({resp.status_code}): {detail}"
                )
            raise UpstreamError(
                f"the registry answered {resp.status_code} to {method} {path}: {detail}"
            )
        raise AssertionError("unreachable")

    @staticmethod
    def _scopes(repo: str, actions: str = "pull,push", *extra: str) -> tuple[str, ...]:
        return (f"repository:{repo}:{actions}", *extra)

    # --- API -------------------------------------------------------------------------------
    async def ping(self) -> None:
        """GET /v2/ - reachability, and learns the auth scheme before any large upload."""
        await self._request("GET", "/v2/", ok=(200,))

    async def blob_exists(self, repo: str, digest: str) -> bool:
        resp = await self._request(
            "HEAD",
            f"/v2/{repo}/blobs/{digest}",
            scopes=self._scopes(repo, "pull"),
            ok=(200,),
            passthrough=(404,),
        )
        return resp.status_code == 200

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount (no bytes move); False when the registry declined."""
        resp = await self._request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": from_repo},
            scopes=self._scopes(repo, "pull,push", f"repository:{from_repo}:pull"),
            ok=(201, 202),
        )
        if resp.status_code == 201:
            return True
        # 202: the registry opened an ordinary upload instead; cancel it.
        location = resp.headers.get("location")
        if location:
            await self._request(
                "DELETE",
                self._abs(location),
                scopes=self._scopes(repo),
                ok=(204, 200, 404),
                passthrough=(405,),
            )
        return False

    def _abs(self, location: str) -> str:
        return urljoin(self.config.base_url + "/", location)

    async def upload_blob(self, repo: str, digest: str, source: Path | bytes, size: int) -> bool:
        """Upload unless present; monolithic PUT, or PATCH chunks above ``chunk_size``. True if
        uploaded."""
        if await self.blob_exists(repo, digest):
            return False
        scopes = self._scopes(repo)
        resp = await self._request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, ok=(202,))
        location = self._abs(resp.headers["location"])
        chunk = self.config.chunk_size
        octet = {"Content-Type": "application/octet-stream"}
        if size <= chunk:
            resp = await self._request(
                "PUT",
                _with_digest(location, digest),
                scopes=scopes,
                ok=(201,),
                headers={**octet, "Content-Length": str(size)},
                content=_body(source, 0, size),
            )
        else:
            offset = 0
            while offset < size:
                n = min(chunk, size - offset)
                start = offset
                resp = await self._request(
                    "PATCH",
                    location,
                    scopes=scopes,
                    ok=(202,),
                    content=_body(source, start, n),
                    headers={
                        **octet,
                        "Content-Length": str(n),
                        "Content-Range": f"{start}-{start + n - 1}",
                    },
                )
                location = self._abs(resp.headers["location"])
                offset += n
            resp = await self._request(
                "PUT",
                _with_digest(location, digest),
                scopes=scopes,
                ok=(201,),
                headers={"Content-Length": "0"},
            )
        got = resp.headers.get("docker-content-digest")
        if got and got != digest:
            raise UpstreamError(f"the registry stored blob {got}, expected {digest}")
        return True

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        resp = await self._request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scopes=self._scopes(repo, "pull"),
            headers={"Accept": MANIFEST_ACCEPT},
            ok=(200,),
            passthrough=(404,),
        )
        if resp.status_code == 404:
            raise NotFound(
                f"image {repo}:{reference} is not in the registry {self.config.host}", field="image"
            )
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        body = resp.content
        return Manifest(body, media_type, sha256_digest(body))

    async def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest a tag points to (HEAD), or None when absent."""
        resp = await self._request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            scopes=self._scopes(repo, "pull"),
            headers={"Accept": MANIFEST_ACCEPT},
            ok=(200,),
            passthrough=(404,),
        )
        if resp.status_code == 404:
            return None
        return resp.headers.get("docker-content-digest")

    async def get_blob(self, repo: str, digest: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        """A small blob (an image config), verified against its digest."""
        resp = await self._get_following(f"/v2/{repo}/blobs/{digest}", repo)
        data = resp.content
        if len(data) > max_bytes:
            raise UpstreamError(f"blob {digest} is larger than {max_bytes} bytes")
        if sha256_digest(data) != digest:
            raise UpstreamError(f"blob {digest} from the registry does not match its digest")
        return data

    async def download_blob(self, repo: str, digest: str, dest: Path) -> int:
        """Stream a blob to a file, verifying its digest (used when a mount is refused)."""
        url = f"/v2/{repo}/blobs/{digest}"
        for _ in range(5):
            req_headers = {}
            auth = self._auth_for(self._scopes(repo, "pull"))
            if auth and url.startswith("/"):
                req_headers["Authorization"] = auth
            async with self._http.stream("GET", url, headers=req_headers) as resp:
                if resp.status_code in (301, 302, 303, 307, 308):
                    url = (
                        self._abs(resp.headers["location"])
                        if url.startswith("/")
                        else urljoin(url, resp.headers["location"])
                    )
                    continue
                if resp.status_code == 401:
                    await self.blob_exists(
                        repo, digest
                    )  # answers the auth challenge for this scope
                    continue
                if resp.status_code != 200:
                    raise UpstreamError(
                        f"the registry answered {resp.status_code} to GET blob {digest}"
                    )
                h = hashlib.sha256()
                size = 0
                f = await asyncio.to_thread(open, dest, "wb")
                try:
                    async for block in resp.aiter_bytes(UPLOAD_CHUNK_READ):
                        h.update(block)
                        size += len(block)
                        await asyncio.to_thread(f.write, block)
                finally:
                    await asyncio.to_thread(f.close)
                if f"sha256:{h.hexdigest()}" != digest:
                    raise UpstreamError(
                        f"blob {digest} from the registry does not match its digest"
                    )
                return size
        raise UpstreamError(f"too many redirects fetching blob {digest}")

    async def _get_following(self, path: str, repo: str) -> httpx.Response:
        resp = await self._request(
            "GET",
            path,
            scopes=self._scopes(repo, "pull"),
            ok=(200,),
            passthrough=(301, 302, 303, 307, 308),
        )
        hops = 0
        while resp.status_code != 200:
            hops += 1
            if hops > 5:
                raise UpstreamError("too many redirects from the registry")
            # Blob storage behind a redirect gets no registry credentials.
            resp = await self._http.get(urljoin(str(resp.url), resp.headers["location"]))
            if resp.status_code not in (200, 301, 302, 303, 307, 308):
                raise UpstreamError(f"blob storage answered {resp.status_code}")
        return resp

    async def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        resp = await self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scopes=self._scopes(repo),
            headers={"Content-Type": media_type},
            content=body,
            ok=(201, 200),
        )
        digest = sha256_digest(body)
        got = resp.headers.get("docker-content-digest")
        if got and got != digest:
            raise UpstreamError(f"the registry stored manifest {got}, expected {digest}")
        return digest

    async def delete_manifest(self, repo: str, digest: str) -> str:
        """DELETE by digest: "deleted", "not_found", or "not_allowed" (deletion disabled)."""
        resp = await self._request(
            "DELETE",
            f"/v2/{repo}/manifests/{digest}",
            scopes=self._scopes(repo, "delete"),
            ok=(202, 200),
            passthrough=(404, 405),
        )
        return {404: "not_found", 405: "not_allowed"}.get(resp.status_code, "deleted")

    async def list_tags(self, repo: str) -> list[str]:
        resp = await self._request(
            "GET",
            f"/v2/{repo}/tags/list",
            scopes=self._scopes(repo, "pull"),
            ok=(200,),
            passthrough=(404,),
        )
        if resp.status_code == 404:
            return []
        return list(resp.json().get("tags") or [])


def _with_digest(location: str, digest: str) -> str:
    # The upload URL carries the registry's own state in its query (_state=...): keep it.
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


def _body(
    source: Path | bytes, start: int, length: int
) -> bytes | Callable[[], AsyncIterator[bytes]]:
    """``length`` bytes of ``source`` from ``start``: the bytes, or a file region read as it
    is sent (a fresh iterator on every attempt)."""
    if isinstance(source, bytes):
        return source[start : start + length]
    return partial(_file_chunks, source, start, length)


async def _file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """Read a file region in 1 MiB blocks, each read in a thread."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(f.seek, start)
        left = length
        while left > 0:
            block = await asyncio.to_thread(f.read, min(UPLOAD_CHUNK_READ, left))
            if not block:
                raise UpstreamError(f"{path.name} ended before {length} bytes were sent")
            left -= len(block)
            yield block
    finally:
        await asyncio.to_thread(f.close)
