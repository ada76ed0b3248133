"""HTML of the dashboard's pages. Everything shown from the daemon goes through `esc`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from waz_actors import __version__
from waz_actors.http.dashboard.assets import LIVE, PAIR, STYLE
from waz_actors.types import MessageStatus

Row = Mapping[str, Any]
DASH = "&ndash;"  # an empty value


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def val(value: object) -> str:
    """Escaped, or a dash when there is nothing to show."""
    return DASH if value is None or value == "" else esc(value)


def path_of(instance_id: str) -> str:
    return "/i/" + quote(instance_id, safe="")


def page(title: str, body: str, nonce: str, *, csrf: str = "", script: str = "") -> str:
    signout = (
        f'<form class="inline" method="post" action="/logout">{hidden(csrf)}'
        "<button>Sign out</button></form>"
        if csrf
        else ""
    )
    js = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{esc(title)} - waz-actors</title><style nonce="{nonce}">{STYLE}</style>'
        '</head><body><header><a class="brand" href="/">waz-actors</a>'
        f'<span class="who">dashboard · v{esc(__version__)}</span><span class="grow"></span>'
        f'<a href="/docs">API</a>{signout}</header><main>{body}</main>{js}</body></html>'
    )


def hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def sign_in(nonce: str, error: str = "") -> str:
    err = f'<div class="flash err">{esc(error)}</div>' if error else ""
    body = (
        f'<div class="signin card"><h1>Sign in</h1>{err}'
        '<form method="post" action="/login"><label for="token">Access token</label>'
        '<input id="token" name="token" type="password" placeholder="waz_..." '
        'autocomplete="current-password" required><div class="actions">'
        '<button class="primary">Sign in</button></div></form>'
        '<p class="muted">A tenant token (<span class="mono">waz-actors token create NAME</span>) '
        'shows that tenant\'s instances. A link with <span class="mono">?access_token=</span> '
        'signs in too.</p><p class="muted"><a href="/docs">API docs</a> · '
        '<a href="/openapi.json">OpenAPI</a> · <a href="/metrics">metrics</a> · '
        '<a href="/healthz">healthz</a></p></div>'
    )
    return page("Sign in", body, nonce)


def rate(value: object) -> str:
    return f"{float(value) * 100:.0f} %" if isinstance(value, int | float) else DASH


def ago(since: object, now: float | None = None) -> str:
    if not isinstance(since, int | float):
        return DASH
    s = max(0, int((now or time.time()) - since))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def health_cell(health: object) -> str:
    h = esc(health or "unknown")
    return f'<span class="dot h-{h}"></span>{h}'


def state_badge(instance_id: str, state: object) -> str:
    s = esc(state)
    return f'<span class="badge s-{s}" data-state-of="{esc(instance_id)}">{s}</span>'


def fleet(rows: Sequence[Row]) -> str:
    """The overview's live part: counters and one row per instance."""
    online = sum(1 for r in rows if r.get("state") == "online")
    queued = sum(int(r.get("queue_depth") or 0) for r in rows)
    counts = {h: sum(1 for r in rows if r.get("health") == h) for h in ("warning", "critical")}
    cards = "".join(
        f'<div class="card"><div class="l">{label}</div><div class="n">{n}</div></div>'
        for label, n in (
            ("instances", len(rows)),
            ("online", online),
            ("queued", queued),
            ("warning", counts["warning"]),
            ("critical", counts["critical"]),
        )
    )
    if not rows:
        return f'<div class="cards">{cards}</div><div class="card empty">No instances yet.</div>'
    body = "".join(_fleet_row(r) for r in rows)
    return (
        f'<div class="cards">{cards}</div><table id="instances"><thead><tr><th>Instance</th>'
        '<th>State</th><th>Health</th><th class="num">Queue</th><th class="num">In flight</th>'
        '<th class="num">Success</th><th class="num">Conflicts 1 h</th>'
        '<th class="num">Attempts 1 h</th><th>Since</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _fleet_row(r: Row) -> str:
    iid = str(r.get("instance_id", ""))
    h = esc(r.get("health") or "unknown")
    return (
        f'<tr class="h-{h}" data-instance="{esc(iid)}" data-health="{h}">'
        f'<td><a class="mono" href="{esc(path_of(iid))}">{esc(iid)}</a></td>'
        f"<td>{state_badge(iid, r.get('state'))}</td><td>{health_cell(r.get('health'))}</td>"
        f'<td class="num">{esc(r.get("queue_depth", 0))}</td>'
        f'<td class="num">{esc(r.get("in_flight", 0))}</td>'
        f'<td class="num">{rate(r.get("success_rate"))}</td>'
        f'<td class="num">{esc(r.get("conflicts", 0))}</td>'
        f'<td class="num">{esc(r.get("attempts", 0))}</td>'
        f'<td class="muted">{ago(r.get("since"))}</td></tr>'
    )


def overview(rows: Sequence[Row], nonce: str, csrf: str) -> str:
    body = (
        '<h1>Instances <span id="livebox" class="live" data-events="/dashboard/events">live'
        '</span></h1><div id="fleet" data-fragment="/dashboard/fleet">'
        f"{fleet(rows)}</div>"
    )
    return page("Instances", body, nonce, csrf=csrf, script=LIVE)


def instance_status(info: Row, queue: Row) -> str:
    """The instance page's live status: state, health and the queue's counters."""
    iid = str(info.get("instance_id", ""))
    conflicts = (info.get("conflicts") or {}).get("count", 0)
    attempts = (info.get("throttle") or {}).get("attempts_in_window", 0)
    status = [
        ("State", state_badge(iid, info.get("state")) + f" <span class=\"muted\">for "
         f"{ago(info.get('since'))}</span>"),
        ("Health", health_cell(queue.get("health") or info.get("health"))),
        ("Linked as", f'<span class="mono">{val(info.get("jid"))}</span>'),
        ("Driver", esc(info.get("driver"))),
        ("Last reason", val(info.get("last_reason"))),
        ("Breaker", val((info.get("breaker") or {}).get("state"))),
        ("Conflicts 1 h", esc(conflicts)),
        ("Attempts 1 h", esc(attempts)),
    ]  # fmt: skip
    qstat = [
        ("Depth", esc(queue.get("depth", 0))),
        ("In flight", esc(queue.get("in_flight", 0))),
        ("Oldest", ago(time.time() - float(queue.get("oldest_age") or 0))
         if queue.get("oldest_age") else DASH),
        ("Sent", esc(queue.get("sent", 0))),
        ("Failed", esc(queue.get("failed", 0))),
        ("Success", rate(queue.get("success_rate"))),
    ]  # fmt: skip
    advice = "".join(f"<li>{esc(a)}</li>" for a in queue.get("recommendations") or [])
    return (
        f'<div class="grid"><div class="card"><h2>Status</h2>{_dl(status)}</div>'
        f'<div class="card"><h2>Queue</h2>{_dl(qstat)}'
        f"{f'<ul>{advice}</ul>' if advice else ''}</div></div>"
    )


def instance_queue(iid: str, messages: Iterable[Row], view: Mapping[str, str], nxt: object) -> str:
    """The instance page's live list of messages: one queue.list page, in the order queued.

    `view`: the page's `status` filter and `after` (paging), `nxt`: queue.list's `next`."""
    base, status = path_of(iid), view.get("status", "")
    chips = "".join(
        f'<a class="chip{" on" if s == status else ""}" href="{esc(_filtered(base, s))}">'
        f"{s or 'all'}</a>"
        for s in ("", *(str(m) for m in MessageStatus))
    )
    rows = "".join(_message_row(m) for m in messages)
    table = (
        '<table id="queue"><thead><tr><th>Message</th><th>To</th><th>Status</th>'
        '<th class="num">Attempts</th><th>Created</th><th>Text</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else '<div class="card empty">No messages.</div>'
    )
    pages = ""
    if view.get("after"):
        pages += f'<a href="{esc(_filtered(base, status))}">← first page</a> '
    if isinstance(nxt, str) and nxt:
        more = base + "?" + urlencode({k: v for k, v in (("status", status), ("after", nxt)) if v})
        pages += f'<a href="{esc(more)}">next page →</a>'
    return f'<nav class="chips">{chips}</nav>{table}' + (
        f'<p class="pages">{pages}</p>' if pages else ""
    )


def _filtered(base: str, status: str) -> str:
    return base + (f"?{urlencode({'status': status})}" if status else "")


def _dl(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _message_row(m: Row) -> str:
    text = str(m.get("text") or (m.get("media") or {}).get("url") or "")
    short = text if len(text) <= 80 else text[:79] + "…"
    status = esc(m.get("status"))
    return (
        f'<tr data-message="{esc(m.get("message_id"))}"><td class="mono">'
        f'{esc(m.get("message_id"))}</td><td class="mono">{esc(m.get("to"))}</td>'
        f'<td><span class="badge s-{status}">{status}</span></td>'
        f'<td class="num">{esc(m.get("attempts", 0))}</td>'
        f'<td class="muted">{ago(m.get("created_at"))} ago</td>'
        f'<td title="{esc(text)}">{esc(short)}</td></tr>'
    )


def instance(
    iid: str,
    status: str,
    queue: str,
    nonce: str,
    csrf: str,
    *,
    view: Mapping[str, str] | None = None,
    flash: str = "",
    error: str = "",
) -> str:
    base = path_of(iid)
    queue_url = f"{base}/live?{urlencode({'part': 'queue', **(view or {})})}"
    note = (f'<div class="flash">{esc(flash)}</div>' if flash else "") + (
        f'<div class="flash err">{esc(error)}</div>' if error else ""
    )
    actions = "".join(
        f'<form class="inline" method="post" action="{esc(base)}/action">{hidden(csrf)}'
        f'<button name="action" value="{a}">{a.capitalize()}</button></form>'
        for a in ("start", "stop", "restart", "reset", "logout")
    )
    body = (
        f'<p class="back"><a href="/">← Instances</a></p><h1><span class="mono">{esc(iid)}'
        f'</span> <span id="livebox" class="live" '
        f'data-events="/dashboard/events?instance={esc(quote(iid, safe=""))}">live</span></h1>'
        f'{note}<div id="status" data-fragment="{esc(base)}/live?part=status">{status}</div>'
        '<div class="grid">'
        f'<div class="card"><h2>Test send</h2><form method="post" action="{esc(base)}/send">'
        f'{hidden(csrf)}<label for="to">To (phone with country code, or JID)</label>'
        '<input id="to" name="to" required placeholder="6281234567890">'
        '<label for="text">Text</label><textarea id="text" name="text" required>'
        'Test from the waz-actors dashboard</textarea><div class="actions">'
        '<button class="primary" id="send">Queue it</button></div></form></div>'
        f'<div class="card"><h2>Pair</h2><form method="post" action="{esc(base)}/pair">'
        f'{hidden(csrf)}<p class="muted">A QR code to scan, refreshed as WhatsApp rotates it; '
        "or, with a phone number, a code to type on the phone.</p>"
        '<label for="phone">Phone (optional)</label><input id="phone" name="phone" '
        'placeholder="for a pairing code instead of a QR"><div class="actions">'
        '<button class="primary" id="pair">Pair</button></div></form>'
        f'<h2>Actions</h2><div class="actions">{actions}</div></div></div>'
        f'<h2>Messages</h2><div id="messages" data-fragment="{esc(queue_url)}">'
        f"{queue}</div>"
    )
    return page(iid, body, nonce, csrf=csrf, script=LIVE)


def pairing(iid: str, nonce: str, events: str, csrf: str) -> str:
    body = (
        f'<p class="back"><a href="{esc(path_of(iid))}">← {esc(iid)}</a></p>'
        f'<h1>Pair <span class="mono">{esc(iid)}</span></h1>'
        f'<div class="card" id="pairing" data-events="{esc(events)}"><div class="qr">'
        '<img id="qr" alt="QR code to link WhatsApp" hidden>'
        '<div class="code" id="paircode" hidden></div><div><p id="pairmsg">Asking the '
        'daemon for a code…</p><p class="muted">State: <span id="pairstate">&ndash;</span></p>'
        "</div></div></div>"
    )
    return page(f"Pair {iid}", body, nonce, csrf=csrf, script=PAIR)


def error_page(nonce: str, title: str, message: str, csrf: str = "") -> str:
    body = (
        f'<p class="back"><a href="/">← Instances</a></p><h1>{esc(title)}</h1>'
        f'<div class="flash err">{esc(message)}</div>'
    )
    return page(title, body, nonce, csrf=csrf)
