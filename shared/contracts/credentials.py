"""Setup's public keys and revoked serials (GET /keys, open), the credentials it issues (POST
/credentials), the console's operator sessions (POST /operator/sessions) and revocations by serial
(POST /credentials/revocations)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class PublicKey(BaseModel):
    kid: str = Field(description="key id: k + 16 hex digits of the SHA-256 of the raw key")
    alg: str = Field("Ed25519", description="always Ed25519")
    public_key: str = Field(description="the raw 32-byte public key, base64url without padding")


SERIAL_PATTERN = r"^[0-9a-f]{8,32}$"


class RevokedSerial(BaseModel):
    serial: str = Field(description="a revoked credential's serial")
    expires_at: int = Field(description="when that credential expires anyway (unix time, s)")


class KeyDocument(BaseModel):
    keys: list[PublicKey] = Field(description="the key that signs new credentials first")
    revoked: list[RevokedSerial] = Field(
        default_factory=list,
        description="signed credentials revoked alone, by serial, until they expire: every "
        "service refuses them",
    )


class RevocationRequest(BaseModel):
    """One credential to revoke: its serial, or the credential itself (its expiry read from it)."""

    serial: str | None = Field(
        None, pattern=SERIAL_PATTERN, description="the serial (the field after the expiry)"
    )
    credential: str | None = Field(
        None, max_length=512, description="the whole credential, instead of its serial"
    )
    expires_at: int | None = Field(
        None,
        ge=0,
        le=2**62,
        description="when the credential expires (unix s): the serial is listed until then; "
        "default: read from the credential, else the longest lifetime setup issues (3650 days)",
    )


class OperatorSessionRequest(BaseModel):
    """The console's exchange at sign-in: the operator's secret for a short-lived credential."""

    secret: str = Field(
        min_length=1,
        max_length=512,
        description="what the operator signed in with: the operator token or an operator "
        "credential (opr_...)",
    )
    ttl_s: int = Field(
        12 * 3600, ge=60, le=30 * 86400, description="the session's lifetime in seconds"
    )


class OperatorSession(BaseModel):
    token: str = Field(description="the session's operator credential (opr_...)")
    serial: str = Field(description="its serial: DELETE /operator/sessions/{serial} revokes it")
    expires_at: int = Field(
        description="unix time, s: the requested lifetime, never beyond the presented credential's"
    )


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
