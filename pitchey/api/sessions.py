"""POST /api/auth/{creator,investor,production}/login, /api/auth/refresh, /api/auth/logout,
GET /api/auth/me."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pitchey.api.common import SERVICES, iso, json_response
from pitchey.auth import Session, current_session, session_token
from pitchey.errors import ApiError, field_errors
from pitchey.instrumentation import RouteTable, client_address
from pitchey.validation import PORTALS, Checker, read_json

__all__ = ["add_session_routes", "session_body"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_body(session: Session) -> dict[str, Any]:
    return {
        "user": session.user.public(),
        "session": {"token": session.token, "expires_at": iso(session.expires_at)},
    }


def _credentials(body: dict[str, Any]) -> tuple[str, str]:
    check = Checker(body)
    check.text("email", 3, 254)
    check.password("password", 1, 1024)
    values = check.done()
    email = str(values["email"]).lower()
    if "@" not in email:
        raise field_errors({"email": "must be an email address"})
    return email, str(values["password"])


def _login_handler(portal: str) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        email, password = _credentials(await read_json(request))
        client = client_address(request, services.settings.trust_forwarded_for)
        session = await services.auth.login(email, password, portal, client)
        response = json_response(session_body(session))
        services.auth.set_cookie(response, session)
        return response

    login.__name__ = f"login_{portal}"
    login.__doc__ = f"Sign in to the {portal} portal."
    return login


async def refresh(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = await current_session(request)
    if session is None:
        raise ApiError(401, "unauthenticated", "sign in first: no valid session")
    renewed = await services.auth.refresh(session)
    response = json_response(session_body(renewed))
    services.auth.set_cookie(response, renewed)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Ends the session (if any) and clears the cookie; safe to call twice."""
    services = request.app[SERVICES]
    token = session_token(request)
    if token is not None:
        await services.auth.logout(token)
    response = json_response({"signed_out": True})
    services.auth.clear_cookie(response)
    return response


async def me(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is None:
        raise ApiError(401, "unauthenticated", "sign in first: no valid session")
    return json_response(
        {"user": session.user.public(), "session": {"expires_at": iso(session.expires_at)}}
    )


def add_session_routes(router: RouteTable) -> None:
    for portal in PORTALS:
        router.add_post(
            f"/api/auth/{portal}/login", _login_handler(portal), name=f"auth_{portal}_login"
        )
    router.add_post("/api/auth/refresh", refresh, name="auth_refresh")
    router.add_post("/api/auth/logout", logout, name="auth_logout")
    router.add_get("/api/auth/me", me, name="auth_me")
