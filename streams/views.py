"""Web views on the worker's port: the latest profile of a user, served by the owning worker."""
from __future__ import annotations

from streams.app import Strata


def register(strata: Strata) -> None:
    app = strata.app

    async def get_profile(web, request, user_id: str):
        profile = strata.profiles.get(user_id.encode())
        if profile is None:
            return web.json({"error": f"no profile for user {user_id!r} yet"}, status=404)
        return web.json(profile)

    # With and without the trailing slash (Faust routes match exactly).
    for path in ("/profiles/{user_id}", "/profiles/{user_id}/"):
        app.page(path, name=f"profile{'-slash' if path.endswith('/') else ''}")(
            app.table_route(table=strata.profiles, match_info="user_id")(get_profile))

    @app.page("/ready/")
    async def ready(web, request):
        """200 once this worker has its partitions and its tables are recovered (a readiness probe)."""
        recovery = app.tables.recovery
        ok = recovery.completed.is_set() and not recovery.in_recovery
        return web.json({"ready": ok}, status=200 if ok else 503)
