"""The dashboard's style and scripts: inline in every page, nothing loaded from anywhere."""

STYLE = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d232b;--mute:#67707c;--line:#e2e5ea;--accent:#1f6feb;
--green:#1a9c4a;--yellow:#d6a100;--red:#d23b3b;--grey:#9aa3ad}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{background:#16202c;color:#fff;display:flex;align-items:center;gap:1em;padding:0 1.5em;
min-height:3.4em}
header a{color:#fff;text-decoration:none}header .brand{font-weight:600;font-size:16px}
header .grow{flex:1}header .who{color:#b9c3ce;font-size:13px}
header form button{background:transparent;color:#dfe6ee;border:1px solid #4a5663}
main{max-width:72em;margin:1.2em auto;padding:0 1.5em}
h1{font-size:20px;margin:.2em 0 .8em}h1 .mono{font-size:inherit}h2{font-size:15px;margin:0 0 .6em}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8em 1em}
.cards .card{flex:1;min-width:9em}.card .n{font-size:22px;font-weight:600}
.card .l{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin-bottom:1em}
table{width:100%;border-collapse:collapse;background:var(--card)}
th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);text-transform:uppercase;letter-spacing:.04em;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f0f4fa}a{color:var(--accent)}
.dot{display:inline-block;width:.75em;height:.75em;border-radius:50%;margin-right:.4em;
vertical-align:-.05em;background:var(--grey)}
.h-healthy .dot,.dot.h-healthy{background:var(--green)}
.h-warning .dot,.dot.h-warning{background:var(--yellow)}
.h-critical .dot,.dot.h-critical{background:var(--red)}
tr.h-warning td:first-child{box-shadow:inset 4px 0 var(--yellow)}
tr.h-critical td:first-child{box-shadow:inset 4px 0 var(--red)}
tr.h-healthy td:first-child{box-shadow:inset 4px 0 var(--green)}
.badge{display:inline-block;padding:.05em .55em;border-radius:99px;font-size:12px;
background:#e8ebef;color:#3b4550}
.s-online{background:#dcf3e4;color:#11703a}.s-pairing,.s-connecting{background:#e2ecfd;color:#1c4fa8}
.s-backoff,.s-tripped{background:#fdf1d6;color:#8a6400}
.s-logged_out,.s-banned,.s-failed{background:#fbe1e1;color:#9c2121}
.s-sent{background:#dcf3e4;color:#11703a}.s-queued,.s-sending{background:#e2ecfd;color:#1c4fa8}
.s-unknown,.s-expired,.s-cancelled,.s-cooldown{background:#fdf1d6;color:#8a6400}
.chips{display:flex;gap:.3em;flex-wrap:wrap;margin:0 0 .6em}.chip{padding:.1em .7em;
border-radius:99px;border:1px solid var(--line);background:#fff;text-decoration:none;
font-size:12.5px;color:var(--ink)}.chip.on{background:var(--ink);color:#fff;border-color:var(--ink)}
.pages{margin:.6em 0}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.muted{color:var(--mute)}.live{font-size:12px;color:var(--mute)}
.live::before{content:"";display:inline-block;width:.55em;height:.55em;border-radius:50%;
background:var(--grey);margin-right:.35em}.live.on::before{background:var(--green)}
form.inline{display:inline}label{display:block;margin:.35em 0 .15em;color:var(--mute);font-size:12px}
input,textarea,select{font:inherit;padding:.4em .5em;border:1px solid #c9ced6;border-radius:6px;
width:100%;background:#fff}textarea{height:4.5em;resize:vertical}
button{font:inherit;padding:.4em .9em;border-radius:6px;border:1px solid #c9ced6;background:#fff;
cursor:pointer}button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.actions{display:flex;gap:.4em;flex-wrap:wrap;margin-top:.6em}.card form+h2{margin-top:1.1em}
.flash{padding:.6em .9em;border-radius:6px;margin-bottom:1em;background:#dcf3e4;color:#11703a}
.flash.err{background:#fbe1e1;color:#9c2121}
.qr{display:flex;gap:1.5em;align-items:center}.qr img{width:264px;height:264px;
image-rendering:pixelated;border:1px solid var(--line);border-radius:6px;background:#fff}
.code{font:600 30px ui-monospace,monospace;letter-spacing:.12em}
.signin{max-width:26em;margin:5em auto}dl{display:grid;grid-template-columns:max-content 1fr;
gap:.25em 1em;margin:0}dt{color:var(--mute)}dd{margin:0}
.empty{padding:1.5em;text-align:center;color:var(--mute)}
.back{margin:0 0 .4em}.back a{text-decoration:none}
"""

# Live updates: a named SSE event from the gateway triggers a (debounced) refetch of the
# server-rendered fragment; a state change is also written into its row at once.
LIVE = """
const live = document.getElementById('livebox');
let timer = null;
function refresh() {
  timer = null;
  for (const box of document.querySelectorAll('[data-fragment]')) {
    fetch(box.dataset.fragment, {credentials: 'same-origin'}).then(r => {
      if (r.status === 401) { location.href = '/'; return null; }
      return r.ok ? r.text() : null;
    }).then(t => { if (t !== null) box.innerHTML = t; });
  }
}
function soon() { if (!timer) timer = setTimeout(refresh, 250); }
const es = new EventSource(live.dataset.events);
es.onopen = () => live.classList.add('on');
es.onerror = () => live.classList.remove('on');
es.addEventListener('state', e => {
  const d = JSON.parse(e.data);
  for (const cell of document.querySelectorAll('[data-state-of="' + CSS.escape(d.instance_id) + '"]')) {
    cell.textContent = d.state; cell.className = 'badge s-' + d.state;
  }
  soon();
});
es.addEventListener('change', soon);
setInterval(soon, 15000);  // success rates and hourly counts also move with time alone
for (const b of document.querySelectorAll('button[value="logout"]')) {
  b.addEventListener('click', e => {
    if (!confirm('Unlink this WhatsApp device? Pairing again needs the phone.')) e.preventDefault();
  });
}
"""

# Pairing: the gateway asks instance.pair for this page's own stream and pushes each rotating
# QR (an SVG image it rendered) or the pairing code; a finished stream must not reconnect,
# since reconnecting would start pairing again.
PAIR = """
const p = document.getElementById('pairing'), img = document.getElementById('qr');
const msg = document.getElementById('pairmsg'), code = document.getElementById('paircode');
const es = new EventSource(p.dataset.events);
let n = 0;
es.addEventListener('qr', e => {
  const d = JSON.parse(e.data); img.src = d.image; img.hidden = false; n += 1;
  img.dataset.rotation = String(n);
  msg.textContent = 'Scan with WhatsApp: Settings > Linked devices > Link a device. Code ' + n + ', it refreshes by itself.';
});
es.addEventListener('code', e => {
  const d = JSON.parse(e.data); code.textContent = d.code; code.hidden = false;
  msg.textContent = 'On the phone: Linked devices > Link with phone number instead, then type this code.';
});
es.addEventListener('state', e => {
  const d = JSON.parse(e.data);
  document.getElementById('pairstate').textContent = d.state;
});
es.addEventListener('paired', () => {
  es.close(); img.hidden = true; code.hidden = true;
  msg.textContent = 'Paired: the instance is online.'; p.dataset.done = 'paired';
});
es.addEventListener('failed', e => {
  es.close(); msg.textContent = 'Pairing stopped: ' + JSON.parse(e.data).message; p.dataset.done = 'failed';
});
es.onerror = () => { if (!p.dataset.done) { es.close(); msg.textContent = 'The stream ended; pair again.'; } };
"""
