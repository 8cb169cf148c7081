"""``/docs``: Swagger UI served from this process, not a CDN (it works offline and under the
strict Content-Security-Policy of :mod:`gridsync.api.middleware`).

The Swagger UI 5 bundle and stylesheet come from the installed ``fastapi-offline`` package,
which ships them (Swagger UI is Apache-2.0 licensed by SmartBear); the page's start-up script
is served as a file too, since the CSP allows no inline script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")
INIT_JS = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
};
"""
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script></body></html>
"""


def swagger_dir() -> Path:
    """Where the installed ``fastapi-offline`` package keeps the Swagger UI files."""
    import fastapi_offline

    path = Path(fastapi_offline.__file__).parent / "static"
    missing = [a for a in ASSETS if not (path / a).exists()]
    if missing:
        msg = f"Swagger UI assets {missing} not found in {path}; reinstall 'fastapi-offline'"
        raise FileNotFoundError(msg)
    return path


def add_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets (call with ``FastAPI(docs_url=None)``)."""
    folder = swagger_dir()
    page = PAGE.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs/assets/init.js", include_in_schema=False)
    def init_js() -> Response:
        return Response(INIT_JS, media_type="application/javascript")

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        media = "application/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(folder / name, media_type=media)
