"""The console's pages: sign-in, sign-out and one server-rendered shell per page (top navigation,
a message area, the page's ES module). The data come from the console's own /api routes."""

from __future__ import annotations

import html
from enum import StrEnum
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import sessions
from services.console.sessions import (
    COOKIE,
    ConsoleSession,
    SessionExpired,
    SessionStore,
    SessionStoreDep,
)
from services.console.settings import ConsoleSettings, SettingsDep
from shared.contracts.decisions import Action, Policy
from shared.db import utcnow
from shared.errors import DomainError

router = APIRouter(include_in_schema=False)

NAV = (
    ("/fleet", "Fleet"),
    ("/ai-packages", "AI packages"),
    ("/decisions", "Decisions"),
    ("/detection", "Detection"),
    ("/registry", "Registry"),
    ("/settings", "Settings"),
)


def content_policy(settings: ConsoleSettings) -> str:
    """Nothing from outside the console, except map tiles from the configured tile server."""
    tiles = ""
    if settings.tile_url:
        parts = urlsplit(settings.tile_url)
        tiles = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; media-src 'self' blob:; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def _page(
    settings: ConsoleSettings,
    *,
    title: str,
    body: str,
    active: str = "",
    session: ConsoleSession | None = None,
    script: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    nav = ""
    if session is not None:
        links = "".join(
            f'<a href="{href}"{" aria-current=page" if href == active else ""}>{label}</a>'
            for href, label in NAV
        )
        nav = (
            f'<nav aria-label="Console">{links}<span class="spacer"></span>'
            '<a href="/docs">API</a>'
            '<form method="post" action="/logout" class="signout">'
            f'<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">'
            '<button type="submit">Sign out</button></form></nav>'
        )
    csrf = f'<meta name="csrf-token" content="{html.escape(session.csrf)}">' if session else ""
    module = f'<script type="module" src="/static/{script}"></script>' if script else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - Edge console</title>{csrf}
<link rel="stylesheet" href="/static/console.css">{module}</head>
<body><header><a class="brand" href="/fleet">Edge console</a>{nav}</header>
<div id="problems" role="status" aria-live="polite"></div>
<main id="main" data-tile-url="{html.escape(settings.tile_url)}">{body}</main>
</body></html>"""
    response = HTMLResponse(page, status_code=status_code)
    response.headers["Content-Security-Policy"] = content_policy(settings)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"  # nosniff: on every answer (middleware)
    return response


def _local_path(value: str | None) -> str:
    """Where to go after sign-in: a path of the console only."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/fleet"
    return value


_REASONS = {
    "expired": "Your session has expired. Sign in again.",
    "signed-out": "You are signed out.",
}


def _login_page(
    settings: ConsoleSettings,
    *,
    message: str = "",
    next_path: str = "/fleet",
    status_code: int = 200,
) -> HTMLResponse:
    note = f'<p class="message" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<section class="login"><h1>Sign in</h1>{note}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form>
<p class="hint">The operator token is EDGE_OPERATOR_TOKEN (with <code>edgectl up</code>: in the
data folder's <code>secrets.json</code>); an operator credential (<code>opr_...</code>) also
signs in.</p></section>"""
    return _page(settings, title="Sign in", body=body, status_code=status_code)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/fleet", status_code=303)


@router.get("/login")
async def login_form(settings: SettingsDep, next: str = "/fleet", reason: str = "") -> HTMLResponse:
    return _login_page(settings, message=_REASONS.get(reason, ""), next_path=_local_path(next))


@router.post("/login")
async def login(request: Request, settings: SettingsDep, store: SessionStoreDep) -> Response:
    form = await request.form(max_files=0, max_fields=3)
    token = str(form.get("token") or "")
    next_path = _local_path(str(form.get("next") or ""))
    if not sessions.same_origin(request):
        return _login_page(
            settings, message="Sign in from the console's own page.", status_code=403
        )
    try:
        cookie, session = await store.open(token)
    except sessions.NotTheOperator:
        return _login_page(
            settings,
            message="That is not the operator token.",
            next_path=next_path,
            status_code=401,
        )
    except DomainError as exc:  # setup, which checks the token, cannot be asked
        unavailable = _login_page(
            settings,
            message=f"Signing in is not possible now: {exc.message}",
            next_path=next_path,
            status_code=503,
        )
        unavailable.headers["Retry-After"] = exc.headers.get("Retry-After", "2")
        return unavailable
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max(1, int((session.expires_at - utcnow()).total_seconds())),
        httponly=True,
        samesite="strict",
        # Secure whenever the console is reached over TLS (its own, or a proxy's X-Forwarded-Proto
        # from an address uvicorn trusts: FORWARDED_ALLOW_IPS).
        secure=settings.cookie_secure or request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, settings: SettingsDep, store: SessionStoreDep) -> Response:
    form = await request.form(max_files=0, max_fields=2)
    try:
        session = await store.find(request)
    except SessionExpired:
        session = None
    if session is not None:
        if not sessions.same_origin(request) or str(form.get("csrf") or "") != session.csrf:
            return _login_page(
                settings, message="Sign out from the console's own page.", status_code=403
            )
        await store.close(request)
    response = RedirectResponse("/login?reason=signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def _signed_in(request: Request, store: SessionStore) -> ConsoleSession | RedirectResponse:
    target = quote(request.url.path, safe="/")
    try:
        session = await store.find(request)
    except SessionExpired:
        redirect = RedirectResponse(f"/login?next={target}&reason=expired", status_code=303)
        redirect.delete_cookie(COOKIE, path="/")
        return redirect
    if session is None:
        return RedirectResponse(f"/login?next={target}", status_code=303)
    return session


FLEET = """<h1>Fleet</h1>
<div class="filters" role="search">
<label>State <select id="filter-state"><option value="">all</option></select></label>
<label>Condition <select id="filter-condition"><option value="">all</option></select></label>
<label>Name or nid <input id="filter-text" type="search"></label>
<span id="live" class="live">connecting…</span></div>
<div class="fleet"><figure class="map"><div id="map" role="img" aria-label="Edges on the map">
</div><figcaption id="legend"></figcaption></figure>
<div class="table-wrap"><table id="fleet-table"><caption>Edges</caption><thead><tr>
<th scope="col">Edge</th><th scope="col">State</th><th scope="col">Condition</th>
<th scope="col">AIs (variant, version, observed)</th><th scope="col">CPU %</th>
<th scope="col">Memory %</th></tr></thead><tbody></tbody></table></div></div>"""

EDGE = """<h1 id="edge-title">Edge</h1> <span id="live" class="live">connecting…</span>
<section class="cards" id="edge-details" aria-label="Details"></section>
<section aria-labelledby="live-view-title"><h2 id="live-view-title">Live view</h2>
<form id="live-form" class="inline">
<label>Rate <select id="live-fps"><option value="1">1 fps</option>
<option value="2" selected>2 fps</option><option value="5">5 fps</option></select></label>
<label>Width <select id="live-width"><option value="320">320 px</option>
<option value="640" selected>640 px</option><option value="1280">1280 px</option></select></label>
<button type="button" id="live-start" class="primary">Live</button>
<button type="button" id="live-stop" hidden>Stop</button>
<span id="live-status" role="status"></span> <span id="live-counter"></span></form>
<img id="live-frame" alt="The edge's camera with its YOLO worker's boxes" hidden></section>
<section aria-labelledby="clips-title"><h2 id="clips-title">Event clips</h2>
<p class="hint">Clips the edge's YOLO worker made around detection events. With
<code>edgectl up</code>, edge-01 makes a <em>demo</em> event on purpose every 20 s (its random
weights detect nothing real).</p>
<div class="table-wrap"><table id="clips"><thead><tr><th scope="col">Started</th>
<th scope="col">Event</th><th scope="col">Classes</th><th scope="col">Duration</th>
<th scope="col">Size</th><th scope="col"></th></tr></thead><tbody></tbody></table></div>
<video id="clip-player" controls preload="metadata" hidden></video></section>
<section><h2>Over time</h2><div class="charts">
<figure><figcaption>CPU %</figcaption><div class="chart" id="chart-cpu"></div></figure>
<figure><figcaption>Memory %</figcaption><div class="chart" id="chart-memory"></div></figure>
<figure><figcaption>Condition</figcaption><div class="chart" id="chart-condition"></div></figure>
<figure><figcaption>Detections</figcaption><div class="chart" id="chart-detections"></div>
</figure></div></section>
<section><h2>Deployments</h2><div id="deploy-form"></div>
<div class="table-wrap"><table id="deployments"><thead><tr><th scope="col">AI</th>
<th scope="col">Desired</th><th scope="col">Observed</th><th scope="col">Generation</th>
<th scope="col">Restarts</th><th scope="col">Reason</th><th scope="col"></th></tr></thead>
<tbody></tbody></table></div></section>
<section><h2>Routing and focus</h2><div id="routing"></div></section>
<section><h2>Why it runs what it runs</h2><div id="explain"></div></section>
<section><h2>Decisions</h2><ol id="edge-decisions" class="decisions"></ol></section>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<button value="cancel">Cancel</button> <button value="ok" id="confirm-ok">Confirm</button></form>
</dialog>"""

PACKAGES = """<h1>AI packages</h1> <span id="live" class="live">connecting…</span>
<section><h2>Upload</h2><form id="upload-form" class="inline">
<label for="archive">Archive (zip or tar.gz with aipackage.yaml)</label>
<input id="archive" name="archive" type="file" accept=".zip,.tar.gz,.tgz" required>
<button type="submit">Upload</button>
<progress id="upload-progress" max="100" value="0" hidden></progress>
<span id="upload-status" role="status"></span></form></section>
<section><h2>Packages</h2><div class="table-wrap"><table id="packages"><thead><tr>
<th scope="col">Filename</th><th scope="col">Class</th><th scope="col">Version</th>
<th scope="col">Condition</th><th scope="col">Build</th><th scope="col">Updated</th></tr>
</thead><tbody></tbody></table></div></section>
<section><h2>Rollouts</h2><div class="table-wrap"><table id="rollouts"><thead><tr>
<th scope="col">AI</th><th scope="col">To version</th><th scope="col">State</th>
<th scope="col">Wave</th><th scope="col">Edges</th><th scope="col">Failed</th>
<th scope="col">Started</th><th scope="col">Actions</th></tr></thead><tbody></tbody></table>
</div></section>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<button value="cancel">Cancel</button> <button value="ok" id="confirm-ok">Confirm</button></form>
</dialog>"""

DECISIONS = """<h1>Decisions</h1>
<section class="switches" aria-label="Optimizer"><h2>Optimizer</h2>
<label><input type="checkbox" id="paused"> Paused (no cycle runs)</label>
<label><input type="checkbox" id="dry-run"> Dry run (decide and record, act on nothing)</label>
<span id="control-status" role="status"></span></section>
<form id="decision-filters" class="filters" role="search">
<label>Policy <select name="policy" id="f-policy"><option value="">all</option>{policies}</select>
</label>
<label>Action <select name="action" id="f-action"><option value="">all</option>{actions}</select>
</label>
<label>Edge <input name="edge" id="f-edge" size="10"></label>
<label>Since <input name="since" id="f-since" type="datetime-local"></label>
<label>Until <input name="until" id="f-until" type="datetime-local"></label>
<button type="submit">Filter</button> <span id="live" class="live">connecting…</span></form>
<ol id="decision-log" class="decisions"></ol>
<section aria-labelledby="event-clips-title"><h2 id="event-clips-title">Event clips</h2>
<p class="hint">Clips the edges' YOLO workers made around detection events (the events that raise
focus), newest first, within the filters' time span. <strong>Clips around this</strong> on a
decision shows the clips of the edge it names (a focus decision: the edge whose event raised it)
from 5 minutes before to 5 minutes after it. With <code>edgectl up</code>, edge-01 makes a
<em>demo</em> event on purpose every 20 s.</p>
<p><span id="clips-scope" role="status">All edges</span>
<button type="button" id="clips-all" hidden>Show all edges</button></p>
<div class="table-wrap"><table id="event-clips"><thead><tr><th scope="col">Edge</th>
<th scope="col">Started</th><th scope="col">Event</th><th scope="col">Classes</th>
<th scope="col">Duration</th><th scope="col"></th></tr></thead><tbody></tbody></table></div>
<video id="clip-player" controls preload="metadata" hidden></video></section>"""

DETECTION = """<h1>Detection</h1>
<div class="tabs" role="tablist">
<button role="tab" id="tab-image" aria-controls="panel-image" aria-selected="true">Image</button>
<button role="tab" id="tab-video" aria-controls="panel-video" aria-selected="false">Video</button>
<button role="tab" id="tab-camera" aria-controls="panel-camera" aria-selected="false">Camera
</button>
</div>
<div class="options"><label><input type="checkbox" id="show-labels" checked> Names and scores
</label><label>Display size <input type="range" id="display-size" min="20" max="100" value="100">
</label><output id="display-size-out">100%</output></div>
<section id="panel-image" role="tabpanel" aria-labelledby="tab-image">
<form id="image-form" class="inline"><label for="image-file">Image</label>
<input id="image-file" type="file" accept="image/*">
<button type="submit" id="image-analyse" disabled>Analyse</button>
<span id="image-status" role="status"></span></form>
<canvas id="image-canvas" width="640" height="360"></canvas></section>
<section id="panel-video" role="tabpanel" aria-labelledby="tab-video" hidden>
<form id="video-form" class="inline"><label for="video-file">Video</label>
<input id="video-file" type="file" accept="video/*">
<button type="submit" id="video-analyse" disabled>Upload and analyse</button>
<progress id="video-upload" max="100" value="0"></progress>
<span id="video-status" role="status"></span></form>
<div class="inline"><button type="button" id="video-toggle" disabled>Pause</button>
<span>Frame <output id="video-frame">0</output> / <output id="video-frames">0</output></span>
<span>FPS <output id="video-fps">0</output></span>
<button type="button" id="video-save" disabled>Save as video</button>
<progress id="video-save-progress" max="100" value="0"></progress>
<a id="video-download" hidden>download</a></div>
<canvas id="video-canvas" width="640" height="360"></canvas></section>
<section id="panel-camera" role="tabpanel" aria-labelledby="tab-camera" hidden>
<div class="inline"><button type="button" id="camera-start">Start camera</button>
<button type="button" id="camera-toggle" disabled>Pause</button>
<span>FPS <output id="camera-fps">0</output></span><span id="camera-status" role="status"></span>
</div><video id="camera-video" playsinline muted hidden></video>
<canvas id="camera-canvas" width="640" height="360"></canvas></section>"""


REGISTRY = """<h1>Registry</h1>
<section aria-labelledby="edges-title"><h2 id="edges-title">Edges</h2>
<div class="registry">
<form id="edge-form" class="stacked" autocomplete="off"><fieldset>
<legend id="edge-form-title">Register an edge</legend>
<label>Name <input name="name" id="edge-name" required maxlength="100"></label>
<label>Node id <input name="nid" id="edge-nid" maxlength="32" placeholder="next 0xNN"></label>
<label>Cluster <select name="cluster_id" id="edge-cluster"></select></label>
<label>Address <input name="address" id="edge-address" maxlength="500"></label>
<label>IP <input name="ip" id="edge-ip" maxlength="64"></label>
<label>Latitude <input name="latitude" id="edge-latitude" type="number" step="any" min="-90"
 max="90"></label>
<label>Longitude <input name="longitude" id="edge-longitude" type="number" step="any"
 min="-180" max="180"></label>
<label>Time zone <input name="time_zone" id="edge-time-zone" maxlength="64"
 placeholder="Asia/Seoul"></label>
<label>Kubernetes node <input name="node_name" id="edge-node-name" maxlength="253"></label>
<label>CPU cores <input name="cpu" id="edge-cpu" type="number" step="any" min="0"></label>
<label>Memory MB <input name="memory_mb" id="edge-memory" type="number" step="1" min="0"></label>
<label>GPUs <input name="gpu" id="edge-gpu" type="number" step="1" min="0"></label>
<label class="check"><input name="analysis" id="edge-analysis" type="checkbox"> Supports analysis
 (may help overloaded edges)</label>
<label>Description <input name="description" id="edge-description" maxlength="2000"></label>
<div class="inline"><button type="submit" class="primary" id="edge-save">Register</button>
<button type="button" id="edge-cancel" hidden>Cancel edit</button>
<span id="edge-status" role="status"></span></div></fieldset></form>
<figure class="map"><div id="pick-map" role="img" aria-label="Click to set the position"></div>
<figcaption>Click the map to set the edge's position (latitude, longitude).</figcaption>
</figure></div>
<div class="table-wrap"><table id="edges-table"><thead><tr><th scope="col">Edge</th>
<th scope="col">Cluster</th><th scope="col">Position</th><th scope="col">Capacity</th>
<th scope="col">Policies</th><th scope="col"></th></tr></thead><tbody></tbody></table></div>
</section>
<section aria-labelledby="clusters-title"><h2 id="clusters-title">Clusters</h2>
<form id="cluster-form" class="inline"><label>Name <input name="name" id="cluster-name"
 required maxlength="100"></label><label>Runtime <select name="runtime" id="cluster-runtime">
<option>agent</option><option>agent-pull</option><option>kubernetes</option><option>docker</option>
</select></label><label>Namespace <input name="namespace" id="cluster-namespace"
 placeholder="edge-ai" maxlength="63"></label>
<button type="submit" class="primary">Add cluster</button></form>
<div class="table-wrap"><table id="clusters-table"><thead><tr><th scope="col">Cluster</th>
<th scope="col">Runtime</th><th scope="col">Namespace</th><th scope="col">Master</th>
<th scope="col">Master state</th><th scope="col"></th></tr></thead><tbody></tbody></table></div>
</section>
<section aria-labelledby="masters-title"><h2 id="masters-title">Masters</h2>
<form id="master-form" class="inline"><label>Name <input name="name" id="master-name" required
 maxlength="100"></label><label>URL <input name="url" id="master-url" required maxlength="500"
 placeholder="http://host:8002"></label><label>Cluster <select name="cluster_id"
 id="master-cluster"></select></label>
<button type="submit" class="primary">Add master</button></form>
<div class="table-wrap"><table id="masters-table"><thead><tr><th scope="col">Master</th>
<th scope="col">URL</th><th scope="col">Clusters</th><th scope="col">State</th>
<th scope="col">Last seen</th><th scope="col"></th></tr></thead><tbody></tbody></table></div>
</section>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<button value="cancel">Cancel</button> <button value="ok" id="confirm-ok">Confirm</button></form>
</dialog>"""

SETTINGS = """<h1>Settings</h1>
<section aria-labelledby="conditions-title"><h2 id="conditions-title">Conditions</h2>
<p class="hint">What the environment AI's result codes mean, and the ai_class of the variant that
runs in each condition.</p>
<div class="table-wrap"><table id="conditions-table"><thead><tr><th scope="col">Code</th>
<th scope="col">Condition</th><th scope="col">AI class</th><th scope="col"></th></tr></thead>
<tbody></tbody></table></div>
<form id="condition-form" class="inline"><label>Code <input id="condition-code" required
 maxlength="16"></label><label>Condition <input id="condition-name" required maxlength="32"
 placeholder="FOGGY"></label><label>AI class <input id="condition-class" maxlength="2"
 placeholder="03"></label><button type="submit" class="primary">Set</button>
<span id="condition-status" role="status"></span></form></section>
<section aria-labelledby="policies-title"><h2 id="policies-title">Policies</h2>
<p class="hint">The optimizer's settings that change at run time (validated by the optimizer,
kept across restarts, logged with who changed them).</p>
<div id="policies" class="policies"></div></section>
<section aria-labelledby="changes-title"><h2 id="changes-title">Recent changes</h2>
<ol id="policy-changes" class="decisions"></ol></section>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<button value="cancel">Cancel</button> <button value="ok" id="confirm-ok">Confirm</button></form>
</dialog>"""


async def _shell(
    request: Request,
    settings: ConsoleSettings,
    store: SessionStore,
    title: str,
    active: str,
    body: str,
    script: str,
) -> Response:
    session = await _signed_in(request, store)
    if isinstance(session, Response):
        return session
    return _page(settings, title=title, body=body, active=active, session=session, script=script)


@router.get("/fleet")
async def fleet_page(request: Request, settings: SettingsDep, store: SessionStoreDep) -> Response:
    return await _shell(request, settings, store, "Fleet", "/fleet", FLEET, "fleet.js")


@router.get("/edges/{edge_id}")
async def edge_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep, edge_id: int
) -> Response:
    body = EDGE.replace('<h1 id="edge-title">', f'<h1 id="edge-title" data-edge-id="{edge_id}">')
    return await _shell(request, settings, store, f"Edge {edge_id}", "/fleet", body, "edge.js")


@router.get("/ai-packages")
async def packages_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep
) -> Response:
    return await _shell(
        request, settings, store, "AI packages", "/ai-packages", PACKAGES, "packages.js"
    )


@router.get("/decisions")
async def decisions_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep
) -> Response:
    body = DECISIONS.replace("{policies}", _options(Policy)).replace("{actions}", _options(Action))
    return await _shell(request, settings, store, "Decisions", "/decisions", body, "decisions.js")


def _options(values: type[StrEnum]) -> str:
    return "".join(f'<option value="{v.value}">{v.value}</option>' for v in values)


@router.get("/detection")
async def detection_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep
) -> Response:
    return await _shell(
        request, settings, store, "Detection", "/detection", DETECTION, "detection.js"
    )


@router.get("/registry")
async def registry_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep
) -> Response:
    return await _shell(request, settings, store, "Registry", "/registry", REGISTRY, "registry.js")


@router.get("/settings")
async def settings_page(
    request: Request, settings: SettingsDep, store: SessionStoreDep
) -> Response:
    return await _shell(request, settings, store, "Settings", "/settings", SETTINGS, "settings.js")
