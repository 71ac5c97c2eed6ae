"""The token a deployed AI posts to the VMS with.

An edge's own token is shown once, at registration, and setup keeps only its hash: the master
cannot hand it to workloads. Instead the master signs a token for the edge's node id with the
platform's edge-token secret (which every service holds), in the format of
``shared.edge_tokens``, so the VMS verifies it offline like any edge token and ties every record
to that node. It is derived from the node id (an HMAC, not random) so that the same edge always
gets the same token: a fresh one on every pass would change the workload's environment and
restart it for nothing.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

from shared.edge_tokens import PREFIX, _sign


def workload_token(nid: str, secret: str) -> str:
    nonce = hmac.new(secret.encode(), f"workload:{nid}".encode(), hashlib.sha256).digest()[:18]
    body = f"{nid.encode().hex()}.{base64.urlsafe_b64encode(nonce).decode().rstrip('=')}"
    return f"{PREFIX}{body}.{_sign(body, secret)}"
