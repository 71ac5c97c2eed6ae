"""Per-agent keys: the credential the master presents to one edge agent, and nothing else accepts.

``agent_key(secret, nid)`` is an HMAC of the edge's node id under the master's agent-key secret
(MASTER_AGENT_KEY_SECRET, by default derived from EDGE_SERVICE_TOKEN). Each agent holds only its
own key (AGENT_KEY, printed by ``edgectl agent-key NID``): a stolen key opens that one agent, and
no service accepts it, so an agent never holds a credential that can change the fleet.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "agk_"


def derived_secret(service_token: str) -> str:
    return hmac.new(service_token.encode(), b"agent-keys", hashlib.sha256).hexdigest()


def agent_key(secret: str, nid: str) -> str:
    return (
        PREFIX + hmac.new(secret.encode(), f"agent:{nid}".encode(), hashlib.sha256).hexdigest()[:40]
    )
