"""Pages for people: `/docs`, and `/` when the dashboard (http/dashboard/) is not mounted.

Self-contained: no script, font or style from the internet, so they work on a host without
outbound access. /docs reads /openapi.json and lets you try each request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from waz_actors import __version__

STYLE = """body{font:15px/1.4 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}
code,pre,textarea,input{font:13px ui-monospace,monospace}pre{background:#f4f4f4;padding:.5em;
overflow:auto}details{border:1px solid #ddd;margin:.3em 0;padding:.3em .6em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
label{display:block;margin:.2em 0}input{width:24em}textarea{width:100%;height:6em}"""

INDEX = f"""<!doctype html><html><head><meta charset="utf-8"><title>waz-actors</title>
<style>{STYLE}</style></head><body><h1>waz-actors HTTP gateway</h1>
<p>Version {__version__}. Served when the dashboard (http/dashboard/) is not mounted:</p>
<ul><li><a href="/docs">/docs</a>: the API, try requests in the browser</li>
<li><a href="/openapi.json">/openapi.json</a>: the OpenAPI 3 document</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/healthz">/healthz</a>: 200 when the daemon answers</li></ul></body></html>"""

DOCS = f"""<!doctype html><html><head><meta charset="utf-8"><title>waz-actors API</title>
<style>{STYLE}</style></head><body><h1>waz-actors API</h1>
<p><label>Token <input id="token" type="password" placeholder="waz_..."></label>
Sent as <code>Authorization: Bearer</code>. <a href="/openapi.json">openapi.json</a></p>
<div id="ops">loading /openapi.json ...</div>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}})[c]);
async function run(form, method, path) {{
  let url = path, q = new URLSearchParams();
  for (const el of form.querySelectorAll('input[data-in]')) {{
    if (el.value === '') continue;
    if (el.dataset.in === 'path') url = url.replace('{{' + el.name + '}}', encodeURIComponent(el.value));
    else q.append(el.name, el.value);
  }}
  if ([...q].length) url += '?' + q;
  const headers = {{}}, tok = document.getElementById('token').value;
  if (tok) headers['Authorization'] = 'Bearer ' + tok;
  const opts = {{method, headers}}, body = form.querySelector('textarea');
  if (body && body.value.trim()) {{ headers['Content-Type'] = 'application/json'; opts.body = body.value; }}
  const out = form.querySelector('pre'); out.textContent = method + ' ' + url + ' ...';
  const r = await fetch(url, opts), text = await r.text();
  let shown = text; try {{ shown = JSON.stringify(JSON.parse(text), null, 2); }} catch (e) {{}}
  out.textContent = r.status + ' ' + r.statusText + '\\n' + shown;
}}
fetch('/openapi.json').then(r => r.json()).then(doc => {{
  let html = '';
  for (const [path, item] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(item)) {{
    const fields = (op.parameters || []).filter(p => p.name !== 'access_token').map(p =>
      `<label>${{esc(p.name)}} (${{p.in}}${{p.required ? ', required' : ''}})
       <input name="${{esc(p.name)}}" data-in="${{p.in}}"></label>`).join('');
    const schema = op.requestBody && op.requestBody.content['application/json'].schema;
    const body = schema ? `<label>JSON body: ${{esc(Object.keys(schema.properties || {{}}).join(', '))}}</label>
       <textarea>{{}}</textarea>` : '';
    html += `<details><summary><span class="m">${{m.toUpperCase()}}</span><code>${{esc(path)}}</code>
      ${{esc(op.summary || '')}}</summary><form onsubmit="run(this,'${{m.toUpperCase()}}','${{esc(path)}}');return false">
      <p>${{esc(op.description || '')}}</p>${{fields}}${{body}}<button>Send</button><pre></pre></form></details>`;
  }}
  document.getElementById('ops').innerHTML = html;
}});
</script></body></html>"""


async def index(_request: Request) -> HTMLResponse:
    return HTMLResponse(INDEX)


async def docs(_request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS)


def routes() -> list[Route]:
    return [Route("/", index, methods=["GET"]), Route("/docs", docs, methods=["GET"])]
