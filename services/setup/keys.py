"""Setup's signing keys: the public half for every verifier and the revoked serials (``GET
/keys``, open); the credentials setup issues to the services and the operator (``POST
/credentials``, operator only); revocation by serial (``POST /credentials/revocations``, operator
only); the console's operator sessions (``POST /operator/sessions`` and ``DELETE
/operator/sessions/{serial}``, the console's own credential).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.setup import credentials as service
from services.setup.settings import SettingsDep
from shared.auth import OperatorAuth, ServiceAuth
from shared.contracts.credentials import (
    SERIAL_PATTERN,
    CredentialKind,
    CredentialRequest,
    IssuedCredential,
    KeyDocument,
    OperatorSession,
    OperatorSessionRequest,
    RevocationRequest,
    RevokedSerial,
)
from shared.credentials import (
    SIGNABLE_SERVICES,
    decode_credential,
    issue_operator_credential,
    issue_service_credential,
)
from shared.db import SessionDep
from shared.deps import KeyRingDep
from shared.errors import Invalid

router = APIRouter(tags=["credentials"])


@router.get(
    "/keys",
    response_model=KeyDocument,
    summary="Setup's public keys (the services verify every credential with them) and the "
    "revoked serials",
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


@router.post(
    "/credentials/revocations",
    response_model=RevokedSerial,
    status_code=201,
    summary="Revoke one signed credential (a service's or an operator's) by its serial",
    description="Every service refuses it once the change reaches it: pushed at commit, and "
    "re-read every EDGE_REVOCATIONS_REFRESH_S at the latest. The serial is listed on GET /keys "
    "until the credential expires.",
)
async def revoke_credential(
    data: RevocationRequest, session: SessionDep, ring: KeyRingDep, _: OperatorAuth
) -> RevokedSerial:
    return await service.revoke_requested(session, ring, data)


@router.post(
    "/operator/sessions",
    response_model=OperatorSession,
    status_code=201,
    summary="The console's sign-in: the operator's secret for a short-lived operator credential",
    description="The console presents what the operator signed in with (the operator token, "
    "or an operator credential); setup checks it and answers a new operator credential with a "
    "serial, expiring after ttl_s (never after the presented credential). A wrong secret: 422 "
    "naming `secret`.",
)
async def open_operator_session(
    data: OperatorSessionRequest,
    session: SessionDep,
    settings: SettingsDep,
    ring: KeyRingDep,
    _: ServiceAuth,
) -> OperatorSession:
    return await service.open_operator_session(session, settings, ring, data.secret, data.ttl_s)


@router.delete(
    "/operator/sessions/{serial}",
    status_code=204,
    summary="The console's sign-out: revoke an operator session's credential",
)
async def end_operator_session(
    serial: Annotated[str, Path(pattern=SERIAL_PATTERN)],
    session: SessionDep,
    ring: KeyRingDep,
    _: OperatorAuth,
) -> Response:
    await service.end_operator_session(session, ring, serial)
    return Response(status_code=204)
