// The explorer's map: every object of a survey as a dot on a 2D canvas, written pixel by
// pixel into one ImageData (100,000 dots in a few milliseconds, no WebGL needed), with
// wheel zoom, drag to pan or to draw a lasso, hover and click. Plotly's WebGL scatter did
// the same in 4 s on a cold headless browser, most of it evaluating 4.8 MB of plotly.js
// (docs/benchmarks.md, "Explorer").
"use strict";

const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
  "#35b779", "#6ece58", "#b5de2b", "#fde725"];
// Categories: Tableau's 20 colours, cycled beyond 20.
const CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
  "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
const MISSING = [190, 190, 190];

function rgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

function ramp(stops, n) {
  // n colours evenly along the stops, linearly interpolated.
  const c = stops.map(rgb), out = [];
  for (let i = 0; i < n; i++) {
    const f = (i / (n - 1)) * (c.length - 1), k = Math.min(Math.floor(f), c.length - 2), t = f - k;
    out.push([0, 1, 2].map(j => Math.round(c[k][j] * (1 - t) + c[k + 1][j] * t)));
  }
  return out;
}

class SkyMap {
  constructor(div, handlers) {
    this.div = div;
    this.on = handlers; // {hover(i | -1, event), click(i), select(indices)}
    this.mode = "lasso";
    div.style.position = "relative";
    div.style.touchAction = "none";
    this.canvas = document.createElement("canvas");
    this.overlay = document.createElement("canvas");
    for (const c of [this.canvas, this.overlay]) {
      c.style.position = "absolute"; c.style.left = "0"; c.style.top = "0";
      c.style.width = "100%"; c.style.height = "100%";
      div.appendChild(c);
    }
    this.legend = document.createElement("div");
    this.legend.className = "legend";
    div.appendChild(this.legend);
    this._listen();
    new ResizeObserver(() => this.data && this.draw()).observe(div);
  }

  setData(d) {
    // d: {x, y, values (Float32Array), numeric, categories}
    this.data = d;
    const n = d.x.length;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = d.x[i], y = d.y[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    const px = 0.04 * (x1 - x0 || 1), py = 0.04 * (y1 - y0 || 1);
    this.home = [x0 - px, x1 + px, y0 - py, y1 + py];
    if (!this.view) this.view = this.home.slice();
    this._colours();
    this.draw();
  }

  _colours() {
    const d = this.data, n = d.x.length;
    this.rgb = new Uint8Array(3 * n);
    let palette, index;
    if (d.numeric) {
      let lo = Infinity, hi = -Infinity;
      for (const v of d.values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
      if (!(hi > lo)) hi = lo + 1;
      palette = ramp(VIRIDIS, 256);
      index = v => Math.max(0, Math.min(255, Math.round(255 * (v - lo) / (hi - lo))));
      this.range = [lo, hi];
    } else {
      palette = d.categories.map((_, k) => rgb(CATEGORICAL[k % CATEGORICAL.length]));
      index = v => v;
    }
    for (let i = 0; i < n; i++) {
      const v = d.values[i];
      const c = Number.isFinite(v) ? palette[index(v)] || MISSING : MISSING;
      this.rgb[3 * i] = c[0]; this.rgb[3 * i + 1] = c[1]; this.rgb[3 * i + 2] = c[2];
    }
    this._legend(palette);
  }

  _legend(palette) {
    const d = this.data, esc = s => String(s).replace(/[&<>"]/g, c => `&#${c.charCodeAt(0)};`);
    if (d.numeric) {
      const stops = VIRIDIS.map((c, k) => `${c} ${(100 * k) / (VIRIDIS.length - 1)}%`).join(",");
      const fmt = v => String(+v.toPrecision(4));
      this.legend.innerHTML = `<div style="height:10px;width:160px;background:linear-gradient(90deg,${stops})"></div>`
        + `<span>${fmt(this.range[0])}</span><span style="float:right">${fmt(this.range[1])}</span>`;
    } else {
      this.legend.innerHTML = d.categories.map((c, k) => {
        const [r, g, b] = palette[k];
        return `<div><span style="display:inline-block;width:10px;height:10px;background:rgb(${r},${g},${b})"></span> ${esc(c)}</div>`;
      }).join("");
    }
  }

  // data → canvas pixels (CSS pixels from the canvas's top-left corner)
  _size() { return [this.canvas.clientWidth, this.canvas.clientHeight]; }
  u(x) { const [w] = this._size(); return ((x - this.view[0]) / (this.view[1] - this.view[0])) * w; }
  v(y) { const [, h] = this._size(); return ((this.view[3] - y) / (this.view[3] - this.view[2])) * h; }
  toClient(x, y) {
    // Where the point (x, y) lies in the window (clientX, clientY): for scripts and tests.
    const box = this.canvas.getBoundingClientRect();
    return [box.left + this.u(x), box.top + this.v(y)];
  }

  draw() {
    const d = this.data, n = d.x.length, ratio = window.devicePixelRatio || 1;
    const [w, h] = this._size();
    const W = Math.max(1, Math.round(w * ratio)), H = Math.max(1, Math.round(h * ratio));
    for (const c of [this.canvas, this.overlay]) if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    const ctx = this.canvas.getContext("2d");
    const img = ctx.createImageData(W, H), px = new Uint32Array(img.data.buffer);
    px.fill(0xffffffff);
    const r = Math.max(1, Math.round(1.5 * ratio)), ax = W / (this.view[1] - this.view[0]);
    const ay = H / (this.view[3] - this.view[2]);
    if (!this.pu || this.pu.length !== n) { // CSS pixels, for hit tests; kept between redraws
      this.pu = new Float32Array(n); this.pv = new Float32Array(n);
    }
    for (let i = 0; i < n; i++) {
      const U = (d.x[i] - this.view[0]) * ax, V = (this.view[3] - d.y[i]) * ay;
      this.pu[i] = U / ratio; this.pv[i] = V / ratio;
      const cu = Math.round(U), cv = Math.round(V);
      if (cu < -r || cv < -r || cu >= W + r || cv >= H + r) continue;
      const colour = 0xff000000 | (this.rgb[3 * i + 2] << 16) | (this.rgb[3 * i + 1] << 8) | this.rgb[3 * i];
      for (let dv = -r + 1; dv < r; dv++) {
        const row = cv + dv;
        if (row < 0 || row >= H) continue;
        for (let du = -r + 1; du < r; du++) {
          const col = cu + du;
          if (col >= 0 && col < W) px[row * W + col] = colour;
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    ctx.strokeStyle = "#999"; ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
    ctx.fillStyle = "#555"; ctx.font = `${12 * ratio}px system-ui, sans-serif`;
    ctx.fillText("UMAP 1 →", W - 80 * ratio, H - 6 * ratio);
    ctx.save(); ctx.translate(14 * ratio, 80 * ratio); ctx.rotate(-Math.PI / 2);
    ctx.fillText("UMAP 2 →", 0, 0); ctx.restore();
  }

  nearest(u, v, radius = 8) {
    // The dot under canvas pixel (u, v), or -1: the last drawn (the one on top) among the closest.
    let best = -1, bd = radius * radius;
    for (let i = 0; i < this.pu.length; i++) {
      const du = this.pu[i] - u, dv = this.pv[i] - v, dd = du * du + dv * dv;
      if (dd <= bd) { bd = dd; best = i; }
    }
    return best;
  }

  inside(poly) {
    // Indices of the dots inside a polygon of canvas pixels (even-odd rule).
    const out = [];
    let u0 = Infinity, u1 = -Infinity, v0 = Infinity, v1 = -Infinity;
    for (const [u, v] of poly) { u0 = Math.min(u0, u); u1 = Math.max(u1, u); v0 = Math.min(v0, v); v1 = Math.max(v1, v); }
    for (let i = 0; i < this.pu.length; i++) {
      const u = this.pu[i], v = this.pv[i];
      if (u < u0 || u > u1 || v < v0 || v > v1) continue;
      let hit = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [ua, va] = poly[a], [ub, vb] = poly[b];
        if ((va > v) !== (vb > v) && u < ((ub - ua) * (v - va)) / (vb - va) + ua) hit = !hit;
      }
      if (hit) out.push(i);
    }
    return out;
  }

  _local(ev) {
    const box = this.canvas.getBoundingClientRect();
    return [ev.clientX - box.left, ev.clientY - box.top];
  }

  _listen() {
    const c = this.overlay;
    let down = null, path = [], moved = false, pending = false, last = null;
    c.addEventListener("pointerdown", ev => {
      if (!this.data) return;
      c.setPointerCapture(ev.pointerId);
      down = this._local(ev); path = [down]; moved = false;
      this.startView = this.view.slice();
      this.on.hover(-1, ev);
    });
    c.addEventListener("pointermove", ev => {
      if (!this.data) return;
      const p = this._local(ev);
      if (down) {
        if (Math.hypot(p[0] - down[0], p[1] - down[1]) > 3) moved = true;
        if (this.mode === "pan") {
          const [w, h] = this._size(), s = this.startView;
          const dx = ((p[0] - down[0]) / w) * (s[1] - s[0]), dy = ((p[1] - down[1]) / h) * (s[3] - s[2]);
          this.view = [s[0] - dx, s[1] - dx, s[2] + dy, s[3] + dy];
          this.draw();
        } else {
          path.push(p); this._drawPath(path);
        }
        return;
      }
      last = [p, ev];
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => {
          pending = false;
          const [q, e] = last;
          this.on.hover(this.nearest(q[0], q[1]), e);
        });
      }
    });
    c.addEventListener("pointerup", ev => {
      if (!down) return;
      const p = this._local(ev);
      const wasDown = down; down = null;
      this._drawPath([]);
      if (!moved) {
        const i = this.nearest(wasDown[0], wasDown[1]);
        if (i >= 0) this.on.click(i);
        return;
      }
      if (this.mode === "lasso") {
        path.push(p);
        if (path.length >= 3) this.on.select(this.inside(path));
      }
    });
    c.addEventListener("pointerleave", ev => { if (!down) this.on.hover(-1, ev); });
    c.addEventListener("wheel", ev => {
      if (!this.data) return;
      ev.preventDefault();
      const [u, v] = this._local(ev), [w, h] = this._size(), f = Math.exp(0.0015 * ev.deltaY);
      const x = this.view[0] + (u / w) * (this.view[1] - this.view[0]);
      const y = this.view[3] - (v / h) * (this.view[3] - this.view[2]);
      this.view = [x + (this.view[0] - x) * f, x + (this.view[1] - x) * f,
        y + (this.view[2] - y) * f, y + (this.view[3] - y) * f];
      this.draw();
    }, {passive: false});
    c.addEventListener("dblclick", () => { this.view = this.home.slice(); this.draw(); });
  }

  _drawPath(path) {
    const ratio = window.devicePixelRatio || 1, ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    if (path.length < 2) return;
    ctx.beginPath();
    ctx.moveTo(path[0][0] * ratio, path[0][1] * ratio);
    for (const [u, v] of path.slice(1)) ctx.lineTo(u * ratio, v * ratio);
    ctx.closePath();
    ctx.fillStyle = "rgba(30,80,160,0.12)"; ctx.fill();
    ctx.strokeStyle = "#1e50a0"; ctx.setLineDash([4 * ratio, 3 * ratio]); ctx.stroke();
  }
}
