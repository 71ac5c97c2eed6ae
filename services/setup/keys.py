"""Setup's signing keys: the public half for every verifier (``GET /keys``, open) and the
credentials setup issues to the services and the operator (``POST /credentials``, operator only).
"""

from __future__ import annotations

from fastapi import APIRouter

from shared.auth import OperatorAuth
from shared.contracts.credentials import (
    CredentialKind,
    CredentialRequest,
    IssuedCredential,
    KeyDocument,
)
from shared.credentials import (
    SIGNABLE_SERVICES,
    decode_credential,
    issue_operator_credential,
    issue_service_credential,
)
from shared.deps import KeyRingDep
from shared.errors import Invalid

router = APIRouter(tags=["credentials"])


@router.get(
    "/keys",
    response_model=KeyDocument,
    summary="Setup's public keys (the services verify every credential with them)",
)
async def public_keys(ring: KeyRingDep) -> KeyDocument:
    return KeyDocument.model_validate(ring.document())


@router.post(
    "/credentials",
    response_model=IssuedCredential,
    status_code=201,
    summary="Issue a service's credential (its grants only) or an operator credential",
)
async def issue_credential(
    data: CredentialRequest, ring: KeyRingDep, _: OperatorAuth
) -> IssuedCredential:
    assert ring.signer is not None  # setup always signs (SetupSettings.signer)
    ttl_s = data.ttl_days * 86400
    if data.kind == CredentialKind.SERVICE:
        if data.service not in SIGNABLE_SERVICES:
            raise Invalid(f"service must be one of {', '.join(SIGNABLE_SERVICES)}", field="service")
        token = issue_service_credential(data.service, ring.signer, ttl_s=ttl_s)
    else:
        if data.service is not None:
            raise Invalid("an operator credential names no service", field="service")
        token = issue_operator_credential(ring.signer, ttl_s=ttl_s)
    claims = decode_credential(token, ring)
    assert claims is not None
    return IssuedCredential(
        kind=data.kind,
        service=data.service,
        token=token,
        kid=ring.signer.kid,
        expires_at=claims.expires_at,
    )
