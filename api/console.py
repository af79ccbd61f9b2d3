"""The web console: static files shipped in the package (no CDN, no build step), served at
``/``. It talks to the /v1/ API from the browser with the user's key, kept in the tab's
session storage. The Content-Security-Policy allows scripts and styles from this origin
only (no inline script), and no framing."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

FOLDER = Path(__file__).with_name("console")
FILES = frozenset({"app.js", "live.js", "app.css"})
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

console = Blueprint("console", __name__)


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@console.get("/")
def page() -> Response:
    return _secured(send_from_directory(FOLDER, "index.html"))


@console.get("/console/<name>")
def asset(name: str) -> Response:
    if name not in FILES:
        return Response("not found", status=404, mimetype="text/plain")
    return _secured(send_from_directory(FOLDER, name))
