"""The node's dashboard page: pure HTML, no scripts, no outside assets.

An operator opens ``http://host:port/`` in a browser and sees the node's
status; pasting a CID in the form reloads the page with an ``<audio>`` player
on ``/content/<cid>``, which the browser streams and seeks with Range
requests. Everything dynamic is escaped: the status and the pasted text are
not trusted to be HTML-safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape

from storenode.api.headers import CidSyntaxError, parse_cid

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 56rem;
       padding: 0 1rem; color: #1d232a; background: #f7f7f5; }
h1 { font-size: 1.4rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e3df;
         vertical-align: top; }
th { width: 14rem; font-weight: 600; }
td { font-family: ui-monospace, monospace; word-break: break-all; white-space: pre-wrap; }
form { display: flex; gap: .5rem; }
input[type=text] { flex: 1; font-family: ui-monospace, monospace; padding: .4rem; }
audio { width: 100%; margin-top: 1rem; }
.error { color: #a4161a; }
"""


def render_dashboard(status: Mapping[str, object], cid_text: str | None = None) -> str:
    """The page for ``status``; with ``cid_text``, a player for that CID (or why not)."""
    rows = "\n".join(
        f"<tr><th>{escape(str(key))}</th><td>{escape(_show(value))}</td></tr>"
        for key, value in status.items()
    )
    player = _player(cid_text) if cid_text is not None else ""
    pasted = escape(cid_text or "", quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>storenode</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>storenode</h1>
<h2>Status</h2>
<table>
{rows}
</table>
<p><a href="/">Refresh</a> · <a href="/api/status">status as JSON</a></p>
<h2>Play a work</h2>
<form method="get" action="/">
<input type="text" name="cid" value="{pasted}" placeholder="CID: 64 hex digits"
 aria-label="CID" autocomplete="off" spellcheck="false">
<button type="submit">Play</button>
</form>
{player}
</body>
</html>
"""


def _player(cid_text: str) -> str:
    try:
        cid = parse_cid(cid_text.strip())
    except CidSyntaxError as error:
        return f'<p class="error">{escape(str(error))}</p>'
    url = f"/content/{cid.hex()}"
    return (
        f'<audio controls preload="metadata" src="{url}"></audio>\n'
        f'<p><a href="{url}">Open the work</a> (<code>{cid.hex()}</code>)</p>'
    )


def _show(value: object) -> str:
    """A status value as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
