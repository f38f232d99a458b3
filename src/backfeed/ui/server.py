"""The dashboard's web server: read-only JSON over the run store, static pages, token checks."""

from __future__ import annotations

import hmac
import ipaddress
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
PAGE_STEPS = 50  # steps on one run page; older ones are a click (?before=) away
MAX_PAGE_STEPS = 500
TOKEN_COOKIE = "backfeed_token"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_SECURITY_HEADERS = {
    # No inline script or style anywhere: a value that slips past escaping still cannot run.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class DashboardError(ValueError):
    """The dashboard cannot start as asked (for example: a public address without a token)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve run data beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise DashboardError(
            f"refusing to serve on {host} without a token: anyone who can reach it could read "
            "every prompt and parameter; pass --token SECRET (or set BACKFEED_UI_TOKEN), "
            "or bind 127.0.0.1"
        )
    if token is not None and len(token) < 8:
        raise DashboardError("the token is too short: use at least 8 characters")


def create_app(store: str | Path, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The Starlette application serving the dashboard for the run store at `store`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from . import views
    from .graphsvg import GraphvizMissing, dot_to_svg, notice_svg

    check_bind(host, token)
    store_path = Path(store)
    meta = {"host": host, "token_required": token is not None, "store": str(store_path)}

    def reader() -> views.RunReader:
        return views.RunReader(store_path)

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    def api_meta(request: Request) -> Response:
        return JSONResponse(meta)

    def api_runs(request: Request) -> Response:
        if not store_path.is_file():  # no run yet: an empty list that fills once one starts
            return JSONResponse({"runs": [], "note": f"no run store at {store_path} yet"})
        with reader() as r:
            return JSONResponse({"runs": r.runs()})

    def api_run(request: Request) -> Response:
        # One page of steps (the newest unless `before` is given): its cost does not grow with the run.
        try:
            limit = _query_int(request, "limit", PAGE_STEPS, 1, MAX_PAGE_STEPS)
            before = _query_int(request, "before", None, -(2**63), 2**63 - 1)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with reader() as r:
            return JSONResponse(r.run_detail(request.path_params["run_id"], before=before, limit=limit))

    def api_step(request: Request) -> Response:
        with reader() as r:
            return JSONResponse(r.step_detail(request.path_params["run_id"], request.path_params["step"]))

    def api_graph(request: Request) -> Response:
        with reader() as r:
            dot = r.step_dot(request.path_params["run_id"], request.path_params["step"])
        try:
            return Response(dot_to_svg(dot), media_type="image/svg+xml")
        except GraphvizMissing as exc:  # said where the graph would be; the DOT text is there
            return Response(notice_svg(f"{exc} (the DOT text: graph.dot)"),
                            media_type="image/svg+xml")

    def api_graph_dot(request: Request) -> Response:
        with reader() as r:
            dot = r.step_dot(request.path_params["run_id"], request.path_params["step"])
        return Response(dot, media_type="text/vnd.graphviz")

    routes = [
        Route("/", page),
        Route("/runs/{run_id}", page),
        Route("/runs/{run_id}/steps/{step:int}", page),
        Route("/favicon.ico", no_icon),
        Route("/api/meta", api_meta),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/steps/{step:int}", api_step),
        Route("/api/runs/{run_id}/steps/{step:int}/graph.svg", api_graph),
        Route("/api/runs/{run_id}/steps/{step:int}/graph.dot", api_graph_dot),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={views.NotFound: _not_found, views.StoreMissing: _not_found},
    )
    return _Guard(app, host=host, token=token)


def _query_int(request: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; ValueError names it otherwise."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"?{name}= must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"?{name}= must be between {low} and {high}, not {value}")
    return value


async def _not_found(request: Any, exc: Exception) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(exc)}, status_code=404)


class _Guard:
    """ASGI wrapper: GET only, host check on loopback (DNS rebinding), token check otherwise."""

    def __init__(self, app: Any, *, host: str, token: str | None) -> None:
        self.app, self.token, self.loopback = app, token, is_loopback(host)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, scope, 405, "the dashboard is read-only")
            return
        if self.token is None and self.loopback:
            host = _host_name(headers.get("host", ""))
            if host and not is_loopback(host):
                await _plain(send, scope, 403, f"unexpected Host header {host!r}")
                return
        set_cookie = False
        if self.token is not None:
            given = _token_from(scope, headers)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _plain(
                    send,
                    scope,
                    401,
                    "A token is required: this dashboard is served beyond 127.0.0.1. "
                    "Open it as http://HOST:PORT/?token=YOUR_TOKEN",
                )
                return
            # A token given in the address is kept in a cookie, so the page's own requests carry it.
            set_cookie = b"token=" in scope.get("query_string", b"")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                if set_cookie:
                    extra.append(
                        (b"set-cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode())
                    )
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(header: str) -> str:
    """The host part of a Host header: `[::1]:8765` -> `::1`, `localhost:80` -> `localhost`."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _token_from(scope: dict, headers: dict[str, str]) -> str | None:
    from urllib.parse import parse_qs

    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return None


async def _plain(send: Any, scope: dict, status: int, text: str) -> None:
    """A refusal: JSON for the API, one line of text for a browser."""
    api = scope.get("path", "").startswith("/api/")
    body = json.dumps({"error": text}).encode() if api else (text + "\n").encode()
    kind = b"application/json" if api else b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                *((k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(
    store: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
) -> None:
    """Serve the dashboard until interrupted (blocks)."""
    import uvicorn

    app = create_app(store, host=host, token=token)
    uvicorn.run(app, host=host, port=port, log_level="warning")
