"""Web views on the worker's port: the latest profile of a user, served by the owning worker.

With `STRATA_HTTP_TOKEN` set, /profiles answers only requests that carry
`Authorization: Bearer <token>` (compared in constant time); the header travels with a request
routed to the owning worker. /ready/ and /metrics stay open for probes and Prometheus.
"""
from __future__ import annotations

import hmac
from typing import Optional

from streams.app import Strata

MAX_USER_ID_CHARS = 128  # the event schema's bound on user_id


def authorized(token: Optional[str], header: Optional[str]) -> bool:
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def register(strata: Strata) -> None:
    app = strata.app
    token = strata.settings.http_token

    async def get_profile(web, request, user_id: str):
        profile = strata.profiles.get(user_id.encode())
        if profile is None:
            return web.json({"error": f"no profile for user {user_id!r} yet"}, status=404)
        return web.bytes(profile, content_type="application/json")

    routed = app.table_route(table=strata.profiles, match_info="user_id")(get_profile)

    async def profile_view(web, request, user_id: str):
        if not authorized(token, request.headers.get("Authorization")):
            return web.json({"error": "missing or wrong bearer token (Authorization: Bearer <STRATA_HTTP_TOKEN>)"},
                            status=401, headers={"WWW-Authenticate": 'Bearer realm="strata"'})
        if not 0 < len(user_id) <= MAX_USER_ID_CHARS:
            return web.json({"error": f"user_id must be 1..{MAX_USER_ID_CHARS} characters"}, status=400)
        return await routed(web, request, user_id=user_id)

    # With and without the trailing slash (Faust routes match exactly).
    for path in ("/profiles/{user_id}", "/profiles/{user_id}/"):
        app.page(path, name=f"profile{'-slash' if path.endswith('/') else ''}")(profile_view)

    @app.page("/ready/")
    async def ready(web, request):
        """200 once this worker has its partitions and its tables are recovered (a readiness probe)."""
        recovery = app.tables.recovery
        ok = recovery.completed.is_set() and not recovery.in_recovery
        return web.json({"ready": ok}, status=200 if ok else 503)
