"""Web views on the worker's port: the latest profile of a user as JSON (/profiles/{user_id}) and as
a page (/ui/users/{user_id}, streams/page.py), each served by the owning worker.

With `STRATA_HTTP_TOKEN` set, both answer only requests that carry
`Authorization: Bearer <token>` (compared in constant time); the header travels with a request
routed to the owning worker. /ready/ and /metrics stay open for probes and Prometheus.
"""
from __future__ import annotations

import hmac
import json
import logging
from http import HTTPStatus
from typing import Optional

from faust.web.exceptions import WebError

from streams.app import Strata
from streams.page import message_page, profile_page
from streams.trails import trail_store

MAX_USER_ID_CHARS = 128  # the event schema's bound on user_id
UNAUTHORIZED = "missing or wrong bearer token (Authorization: Bearer <STRATA_HTTP_TOKEN>)"
log = logging.getLogger(__name__)


def no_profile(user_id: str) -> str:
    return f"no profile for user {user_id!r} yet"


def authorized(token: Optional[str], header: Optional[str]) -> bool:
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def register(strata: Strata) -> None:
    app = strata.app
    token = strata.settings.http_token

    def refusal(request, user_id: str) -> Optional[tuple[int, str, dict]]:
        """(status, message, headers) when the request may not have the user's profile."""
        if not authorized(token, request.headers.get("Authorization")):
            return 401, UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="strata"'}
        if not 0 < len(user_id) <= MAX_USER_ID_CHARS:
            return 400, f"user_id must be 1..{MAX_USER_ID_CHARS} characters", {}
        return None

    async def get_profile(web, request, user_id: str):
        profile = strata.profiles.get(user_id.encode())
        if profile is None:
            return web.json({"error": no_profile(user_id)}, status=404)
        return web.bytes(profile, content_type="application/json")

    routed_profile = app.table_route(table=strata.profiles, match_info="user_id")(get_profile)

    async def profile_view(web, request, user_id: str):
        refused = refusal(request, user_id)
        if refused:
            status, message, headers = refused
            return web.json({"error": message}, status=status, headers=headers)
        return await routed_profile(web, request, user_id=user_id)

    async def get_page(web, request, user_id: str):
        profile = strata.profiles.get(user_id.encode())
        if profile is None:
            return web.html(message_page("No profile", no_profile(user_id)), status=404)
        return web.html(profile_page(json.loads(profile), trail_store(strata.settings).load(user_id)))

    routed_page = app.table_route(table=strata.profiles, match_info="user_id")(get_page)

    async def page_view(web, request, user_id: str):
        refused = refusal(request, user_id)
        if refused:
            status, message, headers = refused
            return web.html(message_page(HTTPStatus(status).phrase, message), status=status, headers=headers)
        try:
            return await routed_page(web, request, user_id=user_id)
        except WebError as exc:  # no owner known (a rebalance under way): Faust's status, as a page
            return web.html(message_page(HTTPStatus(exc.code).phrase, exc.detail), status=exc.code)
        except Exception:  # noqa: BLE001 - a page must never harm the worker
            log.exception("profile page: the page of a user failed")
            return web.html(message_page("Error", "The page could not be made; the worker's log says why."),
                            status=500)

    # With and without the trailing slash (Faust routes match exactly).
    for path, view, name in (("/profiles/{user_id}", profile_view, "profile"),
                             ("/ui/users/{user_id}", page_view, "page")):
        app.page(path, name=name)(view)
        app.page(path + "/", name=f"{name}-slash")(view)

    @app.page("/ready/")
    async def ready(web, request):
        """200 once this worker has its partitions and its tables are recovered (a readiness probe)."""
        recovery = app.tables.recovery
        ok = recovery.completed.is_set() and not recovery.in_recovery
        return web.json({"ready": ok}, status=200 if ok else 503)
