"""Setup's public keys (GET /keys, open), the credentials it issues (POST /credentials) and the
edge tokens it has revoked (GET /edges/token-revocations, read by every service)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class PublicKey(BaseModel):
    kid: str = Field(description="key id: k + 16 hex digits of the SHA-256 of the raw key")
    alg: str = Field("Ed25519", description="always Ed25519")
    public_key: str = Field(description="the raw 32-byte public key, base64url without padding")


class KeyDocument(BaseModel):
    keys: list[PublicKey] = Field(description="the key that signs new credentials first")


class CredentialKind(StrEnum):
    SERVICE = "service"
    OPERATOR = "operator"


class CredentialRequest(BaseModel):
    kind: CredentialKind = Field(CredentialKind.SERVICE, description="service or operator")
    service: str | None = Field(
        None,
        description="the service it is for (setup, master, optimizer, vms, analysis): it gets "
        "exactly that service's grants",
    )
    ttl_days: int = Field(365, ge=1, le=3650, description="lifetime in days")


class IssuedCredential(BaseModel):
    kind: CredentialKind
    service: str | None
    token: str = Field(description="shown once: give it to the service (EDGE_<SERVICE>_TOKEN)")
    kid: str = Field(description="the key that signed it")
    expires_at: int = Field(description="unix time, seconds")


class TokenRevocations(BaseModel):
    min_token_id: dict[str, int] = Field(
        description="per node id, the lowest edge-token id still valid"
    )
