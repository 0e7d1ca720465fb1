# ruff: noqa: E501  (HTML and JavaScript read better unwrapped)
"""The explorer's HTML pages: plain HTML and a little JavaScript over the JSON API; the map
is drawn by ``static/skymap.js`` on a 2D canvas (no build step, no plotting library)."""

from __future__ import annotations

import html
import json

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#1d2b3a;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#cfe3ff;text-decoration:none}
main{padding:12px 16px}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.cell{width:132px;font-size:11px;text-align:center}
.cell img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left}
#hover{position:fixed;pointer-events:none;display:none;background:#fff;border:1px solid #888;
padding:4px;font-size:11px;z-index:10}
.err{color:#a00}
.legend{position:absolute;right:8px;top:8px;background:rgba(255,255,255,.85);font-size:11px;
padding:4px;pointer-events:none;max-height:70%;overflow:hidden}
"""

NAV = (
    '<header><b>astroloom explore</b><a href="/">map</a><a href="/anomalies">anomalies</a>'
    '<a href="/search">search by example</a><a href="/docs">API</a></header>'
)


def page(title: str, body: str, script: str = "", skymap: bool = False) -> str:
    # The map's data is requested first thing, so that it downloads while the page and
    # skymap.js (13 kB) are read.
    lib = (
        "<script>const firstMap = fetch('/api/map.bin').then(r => r.arrayBuffer());</script>"
        '<script src="/static/skymap.js"></script>'
        if skymap
        else ""
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{lib}</head><body>{NAV}<main>{body}</main>"
        f"<script>{script}</script></body></html>"
    )


def cell_js() -> str:
    return """
function cell(o, extra){
  const d = document.createElement('div'); d.className='cell';
  d.innerHTML = `<a href="/object/${encodeURIComponent(o.id)}"><img loading="lazy"
    src="/api/objects/${encodeURIComponent(o.id)}/image.png"></a><br>${o.id}<br>${extra||''}`;
  return d;
}
"""


def map_page() -> str:
    body = """
<div>colour by <select id="color"></select>
 drag to <label><input type="radio" name="mode" value="lasso" checked> select (lasso)</label>
 <label><input type="radio" name="mode" value="pan"> pan</label>;
 wheel to zoom, double-click to reset. <span id="status">loading…</span></div>
<div id="map" style="width:100%;height:78vh"></div>
<div id="hover"></div>
<div id="picked"></div>
"""
    script = (
        cell_js()
        + """
const hover = document.getElementById('hover');
let data = null;
function unpack(buf){
  // uint32 header length, JSON header, float32 x, y, values, then the ids (see /api/map.bin).
  const hlen = new DataView(buf).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)));
  const n = head.n, at = 4 + hlen;
  return Object.assign(head, {
    x: new Float32Array(buf, at, n), y: new Float32Array(buf, at + 4 * n, n),
    values: new Float32Array(buf, at + 8 * n, n),
    ids: new TextDecoder().decode(new Uint8Array(buf, at + 12 * n)).split('\\n')});
}
function shown(i){
  const v = data.values[i];
  if (Number.isNaN(v)) return 'none';
  return data.numeric ? String(+v.toPrecision(5)) : data.categories[v];
}
const skymap = new SkyMap(document.getElementById('map'), {
  hover(i, ev){
    if (i < 0){ hover.style.display = 'none'; return; }
    const id = data.ids[i];
    hover.innerHTML = `<img width=96 height=96 src="/api/objects/${encodeURIComponent(id)}/image.png"><br>${id}<br>${shown(i)}`;
    hover.style.left = (ev.clientX + 12) + 'px'; hover.style.top = (ev.clientY + 12) + 'px';
    hover.style.display = 'block'; hover.dataset.id = id;
  },
  click(i){ location.href = '/object/' + encodeURIComponent(data.ids[i]); },
  select(indices){
    const box = document.getElementById('picked');
    box.innerHTML = `<h3>${indices.length} selected</h3>`;
    const g = document.createElement('div'); g.className = 'grid';
    for (const i of indices.slice(0, 48)) g.appendChild(cell({id: data.ids[i]}));
    box.appendChild(g);
  },
});
for (const r of document.querySelectorAll('input[name=mode]')) r.onchange = () => { skymap.mode = r.value; };
async function draw(color){
  const t0 = performance.now();
  const pending = color === null ? firstMap
    : fetch('/api/map.bin?color=' + encodeURIComponent(color)).then(r => r.arrayBuffer());
  data = unpack(await pending);
  const sel = document.getElementById('color');
  if (!sel.options.length){
    for (const l of data.labels){ const o = document.createElement('option'); o.text = l; sel.add(o); }
    sel.onchange = () => draw(sel.value);
  }
  skymap.setData(data);
  document.getElementById('status').textContent =
    `${data.ids.length} objects, drawn in ${Math.round(performance.now() - t0)} ms`;
  document.body.dataset.ready = '1';
}
draw(null);
"""
    )
    return page("astroloom explore: map", body, script, skymap=True)


def js_string(text: str) -> str:
    """A JavaScript string literal that cannot end the surrounding <script>."""
    return json.dumps(text).replace("</", "<\\/")


def object_page(object_id: str) -> str:
    safe = html.escape(object_id)
    body = f"""
<h2 id="title">{safe}</h2>
<div style="display:flex;gap:24px;flex-wrap:wrap">
 <div><img id="image" width=256 height=256 style="image-rendering:pixelated"><br>
  band <select id="band"></select> stretch <select id="stretch">
  <option>asinh</option><option>linear</option><option>log</option></select></div>
 <div><table id="labels"></table></div>
</div>
<div id="spectrum"></div><div id="lightcurve"></div>
<h3>Nearest neighbours</h3><div id="neighbours" class="grid"></div>
<h3>Why: the model's surprise per patch</h3><img id="surprise" width=420>
<div id="generate" style="display:none"><h3>Generate</h3>
 <button id="like">draw galaxies like this one</button>
 <button id="others">draw the galaxy with this spectrum and photometry</button>
 <div><img id="drawn"></div></div>
"""
    script = (
        cell_js()
        + f"""
const id = {js_string(object_id)};
const base = '/api/objects/' + encodeURIComponent(id);
function image(){{
  const b = document.getElementById('band').value, s = document.getElementById('stretch').value;
  document.getElementById('image').src = `${{base}}/image.png?band=${{b}}&stretch=${{s}}&size=256`;
}}
(async () => {{
  const r = await fetch(base);
  if (!r.ok){{ document.getElementById('title').innerHTML += ' <span class=err>not found</span>'; return; }}
  const o = await r.json();
  const band = document.getElementById('band');
  for (const b of ['rgb', ...o.bands]){{ const x = document.createElement('option'); x.text = b; band.add(x); }}
  band.onchange = image; document.getElementById('stretch').onchange = image;
  if (o.modalities.includes('image')) {{ image();
    document.getElementById('surprise').src = base + '/explain.png?method=surprise'; }}
  const rows = [['anomaly score', o.anomaly_score.toFixed(4) + ' (rank ' + o.anomaly_rank + ')'],
    ...Object.entries(o.labels)];
  document.getElementById('labels').innerHTML =
    rows.map(([k, v]) => `<tr><th>${{k}}</th><td>${{v}}</td></tr>`).join('');
  if (o.modalities.includes('spectrum'))
    document.getElementById('spectrum').innerHTML = `<img src="${{base}}/spectrum.png">`;
  if (o.modalities.includes('lightcurve'))
    document.getElementById('lightcurve').innerHTML = `<img src="${{base}}/lightcurve.png">`;
  const info = await (await fetch('/api/info')).json();
  if (info.generation) {{
    document.getElementById('generate').style.display = 'block';
    const draw = mode => {{ document.getElementById('drawn').src = `${{base}}/generate.png?mode=${{mode}}`; }};
    document.getElementById('like').onclick = () => draw('image');
    document.getElementById('others').onclick = () => draw('others');
  }}
  const n = await (await fetch(base + '/neighbours?k=12')).json();
  const g = document.getElementById('neighbours');
  for (const x of n.neighbours) g.appendChild(cell(x, 'd = ' + x.distance.toFixed(4)));
  document.body.dataset.ready = '1';
}})();
"""
    )
    return page(f"astroloom explore: {object_id}", body, script)


def anomalies_page() -> str:
    body = """
<h2>Most unusual objects</h2>
<p id="how" class="note"></p>
<div>label <input id="label" placeholder="e.g. morph_type"> = <input id="value">
 limit <input id="limit" value="48" size=4> <button id="go">filter</button></div>
<div id="list" class="grid"></div>
"""
    script = (
        cell_js()
        + """
async function load(){
  const q = new URLSearchParams({limit: document.getElementById('limit').value});
  const l = document.getElementById('label').value, v = document.getElementById('value').value;
  if (l) q.set('label', l); if (v) q.set('value', v);
  const r = await fetch('/api/anomalies?' + q);
  const box = document.getElementById('list'); box.innerHTML = '';
  if (!r.ok){ box.innerHTML = `<span class=err>${(await r.json()).detail}</span>`; return; }
  const reply = await r.json(), rows = reply.anomalies;
  document.getElementById('how').textContent = 'scored by ' + ({
    'lof-range': 'the largest local outlier factor over 10–50 neighbours in embedding space',
    'iforest': 'an isolation forest in embedding space'}[reply.method] || reply.method);
  rows.forEach((o, i) => box.appendChild(cell(o, `#${i + 1} score ${o.score.toFixed(3)}`)));
  document.body.dataset.ready = '1';
}
document.getElementById('go').onclick = load; load();
"""
    )
    return page("astroloom explore: anomalies", body, script)


def search_page() -> str:
    body = """
<h2>Search by example</h2>
<form id="form"><input type="file" id="files" name="files" multiple accept=".fits,.fit,.png,.jpg,.jpeg">
<button>search</button></form>
<div id="results"></div>
<h3>More like these, fewer like those</h3>
<div>positives (ids, comma-separated) <input id="pos" size=40>
 negatives <input id="neg" size=40> <button id="rank">rank the survey</button></div>
<div id="ranked" class="grid"></div>
"""
    script = (
        cell_js()
        + """
document.getElementById('form').onsubmit = async ev => {
  ev.preventDefault();
  const body = new FormData();
  for (const f of document.getElementById('files').files) body.append('files', f);
  const r = await fetch('/api/search', {method: 'POST', body});
  const box = document.getElementById('results'); box.innerHTML = '';
  const out = await r.json();
  if (!r.ok){ box.innerHTML = `<p class=err id=error>${out.detail}</p>`; return; }
  for (const q of out.results){
    box.insertAdjacentHTML('beforeend', `<h4>${q.name}</h4>`);
    const g = document.createElement('div'); g.className = 'grid results';
    for (const x of q.neighbours) g.appendChild(cell(x, 'd = ' + x.distance.toFixed(4)));
    box.appendChild(g);
  }
  document.body.dataset.ready = '1';
};
document.getElementById('rank').onclick = async () => {
  const split = s => s.split(',').map(x => x.trim()).filter(x => x);
  const r = await fetch('/api/rank', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({positive: split(document.getElementById('pos').value),
                          negative: split(document.getElementById('neg').value)})});
  const box = document.getElementById('ranked'); box.innerHTML = '';
  const out = await r.json();
  if (!r.ok){ box.innerHTML = `<span class=err>${out.detail}</span>`; return; }
  for (const x of out.ranked) box.appendChild(cell(x, 'score ' + x.score.toFixed(2)));
};
"""
    )
    return page("astroloom explore: search", body, script)
