// SVG figures shared by the explorers, with no library.
//
// Each figure is built once for its width and then updated in place: a slider move only
// rewrites attributes and texts (elements for more classes are added to pools and kept), which
// costs far less than parsing and laying out new elements (benchmarks/explorer_frame.py). Figures are drawn at their real
// pixel size (no viewBox scaling), so their text stays at the page's body size (1em).

const NS = "http://www.w3.org/2000/svg";

/** Escape text for HTML. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

/** A new SVG element with attributes (and text), appended to `parent` when given. */
export function svgEl(tag, attrs = {}, parent = null, text = null) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  if (parent) parent.append(e);
  return e;
}

// What was last written to each element, kept beside it: comparing with it is cheaper than
// reading the DOM, and unchanged values are not written again (no style invalidation).
const written = new WeakMap();

function memo(e) {
  let m = written.get(e);
  if (!m) written.set(e, (m = {}));
  return m;
}

/** Set the attributes that changed. */
export function setAttrs(e, attrs) {
  const m = memo(e);
  for (const k in attrs) {
    const s = String(attrs[k]);
    if (m[k] !== s) {
      e.setAttribute(k, s);
      m[k] = s;
    }
  }
}

/** Set the text of an element if it changed. */
export function setText(e, text) {
  const m = memo(e);
  const s = String(text);
  if (m[" text"] !== s) {
    e.textContent = s;
    m[" text"] = s;
  }
}

/** Show or hide an element. */
export function show(e, visible) {
  setAttrs(e, { display: visible ? "inline" : "none" });
}

/** Linear map of [d0, d1] onto [r0, r1]. */
export function linear(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Short tick label: at most 3 significant digits. */
export function tickLabel(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(3)));
  return v.toExponential(1);
}

/** Categorical colours for classes (matplotlib's tab10, then two more). */
export const CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];

export const classColor = (k) => CLASS_COLORS[k % CLASS_COLORS.length];

/** Diverging colour for v in [-1, 1]: blue, near-white, red (like matplotlib's RdBu_r). */
export function diverging(v) {
  const t = Math.max(-1, Math.min(1, v));
  const mid = [247, 247, 247];
  const end = t < 0 ? [33, 102, 172] : [178, 24, 43];
  const a = Math.abs(t);
  return `rgb(${mid.map((m, i) => Math.round(m + (end[i] - m) * a)).join(",")})`;
}

/** A power of ten that brings max |entry| into [1, 10), and its label ("" for 1). */
export function unitOf(...mats) {
  let top = 0;
  for (const G of mats) for (const row of G) for (const v of row) top = Math.max(top, Math.abs(v));
  if (!(top > 0) || (top >= 1 && top < 10)) return { unit: 1, label: "" };
  const exp = Math.floor(Math.log10(top));
  return { unit: 10 ** exp, label: `unit 1e${exp}` };
}

/** The outer <svg> of a figure, with a title line. */
export function frame(width, height, title, parent) {
  const svg = svgEl("svg", { class: "nclab-svg", width, height, role: "img", "aria-label": title }, parent);
  const titleEl = svgEl("text", { class: "nclab-title", x: width / 2, y: 18, "text-anchor": "middle" }, svg, title);
  return { svg, titleEl };
}

/** The first `n` items of `items`, made with `make()` where there are fewer (pools grow, never shrink). */
export function grow(items, n, make) {
  while (items.length < n) items.push(make());
  return items;
}

/**
 * A K x K heat map with class numbers on both axes, on a symmetric scale [-vmax, vmax]. The
 * values are written in the cells when a cell is wide enough for body-size text; every cell
 * has a tooltip. Cell (r, c) sits at (c, r) in a group scaled by the cell size, so a new K
 * changes one transform and shows or hides cells; nothing is rebuilt.
 */
export class Heatmap {
  constructor(width, title, parent) {
    const [left, top] = [30, 52];
    const side = Math.max(60, Math.min(width - left - 8, 360));
    Object.assign(this, { left, top, side, K: 0, rows: [], texts: [], xlabels: [], ylabels: [] });
    const { svg, titleEl } = frame(left + side + 8, top + side + 40, title, parent);
    setAttrs(titleEl, { x: left + side / 2 });
    this.svg = svg;
    this.subtitle = svgEl("text", { class: "nclab-note", x: left + side / 2, y: 40, "text-anchor": "middle" }, svg);
    this.grid = svgEl("g", {}, svg);
    this.labels = svgEl("g", {}, svg);
    svgEl("text", { class: "nclab-note", x: left + side / 2, y: top + side + 36, "text-anchor": "middle" }, svg, "class");
    svgEl("rect", { x: left, y: top, width: side, height: side, fill: "none", stroke: "#888" }, svg);
    this.empty = svgEl("text", { class: "nclab-warn", x: left + side / 2, y: top + side / 2, "text-anchor": "middle",
      "dominant-baseline": "central" }, svg);
  }

  cell(r, c) {
    const rect = svgEl("rect", { x: c, y: r, width: 1.01, height: 1.01 }, this.grid);
    return { rect, tip: svgEl("title", {}, rect) };
  }

  /** Show K x K cells, place the axis labels and the cell texts (only when K changes). */
  layout(K) {
    const { left, top, side } = this;
    const size = side / K;
    setAttrs(this.grid, { transform: `translate(${left} ${top}) scale(${size})` });
    grow(this.rows, K, () => []);
    this.rows.forEach((row, r) => {
      grow(row, K, () => this.cell(r, row.length));
      row.forEach((cell, c) => show(cell.rect, r < K && c < K));
    });
    this.annotate = size >= 46;
    const n = this.annotate ? K * K : 0;
    grow(this.texts, n, () => svgEl("text", { class: "nclab-cell", "text-anchor": "middle", "dominant-baseline": "central" }, this.labels));
    this.texts.forEach((t, i) => {
      show(t, i < n);
      if (i < n) setAttrs(t, { x: (left + ((i % K) + 0.5) * size).toFixed(1), y: (top + (Math.floor(i / K) + 0.5) * size).toFixed(1) });
    });
    const every = K > 8 ? 2 : 1;
    grow(this.xlabels, K, () => svgEl("text", { y: top + side + 18, "text-anchor": "middle" }, this.labels));
    grow(this.ylabels, K, () => svgEl("text", { x: left - 6, "text-anchor": "end", "dominant-baseline": "central" }, this.labels));
    this.xlabels.forEach((t, k) => {
      const on = k < K && k % every === 0;
      show(t, on);
      show(this.ylabels[k], on);
      if (!on) return;
      setAttrs(t, { x: (left + (k + 0.5) * size).toFixed(1) });
      setAttrs(this.ylabels[k], { y: (top + (k + 0.5) * size).toFixed(1) });
      setText(t, k + 1);
      setText(this.ylabels[k], k + 1);
    });
    this.K = K;
  }

  /** Show G (K x K); `unit` divides the written values; `subtitle` and `emptyNote` are texts. */
  update(G, { vmax = null, unit = 1, subtitle = "", emptyNote = "" } = {}) {
    const K = G.length;
    if (K !== this.K) this.layout(K);
    let scale = vmax;
    if (scale === null) {
      scale = 0;
      for (const row of G) for (const v of row) scale = Math.max(scale, Math.abs(v));
    }
    for (let r = 0; r < K; r++) {
      for (let c = 0; c < K; c++) {
        const v = G[r][c];
        const shown = Math.abs(v) < 1e-12 * (scale || 1) ? 0 : v / unit;
        const cell = this.rows[r][c];
        setAttrs(cell.rect, { fill: scale > 0 ? diverging(v / scale) : diverging(0) });
        setText(cell.tip, `(${r + 1}, ${c + 1}): ${shown.toPrecision(4)}`);
        if (this.annotate) {
          const text = this.texts[r * K + c];
          setText(text, shown.toFixed(2));
          setAttrs(text, { style: `fill:${scale > 0 && Math.abs(v / scale) > 0.55 ? "#fff" : "#111"}` });
        }
      }
    }
    setText(this.subtitle, subtitle);
    setText(this.empty, emptyNote);
    show(this.empty, Boolean(emptyNote));
  }
}

/** Y-axis ticks with grid lines, from a pool (the number of ticks varies with the data). */
export class YTicks {
  constructor(svg, left, right, size = 12) {
    this.left = left;
    this.right = right;
    this.lines = grow([], size, () => svgEl("line", { x1: left, x2: right, stroke: "#ddd" }, svg));
    this.labels = grow([], size, () => svgEl("text", { x: left - 6, "text-anchor": "end", "dominant-baseline": "central" }, svg));
  }

  /** values: tick positions in data units, Y: data -> pixel, label: value -> text. */
  update(values, Y, label) {
    this.lines.forEach((line, i) => {
      const on = i < values.length;
      show(line, on);
      show(this.labels[i], on);
      if (on) {
        setAttrs(line, { y1: Y(values[i]).toFixed(1), y2: Y(values[i]).toFixed(1) });
        setAttrs(this.labels[i], { y: Y(values[i]).toFixed(1) });
        setText(this.labels[i], label(values[i]));
      }
    });
  }
}

/**
 * A line chart on a log10 y axis: series = [{color, dash}] fixed at construction; update with
 * [{xs, ys}]; values below `floor` are drawn at `floor`.
 */
export class LogLines {
  constructor(series, { width, height = 230, title, xLabel, floor = 1e-16 }, parent) {
    Object.assign(this, { width, height, floor, left: 60, right: 12, top: 28, bottom: 46 });
    const { svg } = frame(width, height, title, parent);
    this.svg = svg;
    this.yticks = new YTicks(svg, this.left, width - this.right);
    this.xlabels = grow([], 8, () => svgEl("text", { y: height - this.bottom + 20, "text-anchor": "middle" }, svg));
    svgEl("text", { class: "nclab-note", x: (this.left + width - this.right) / 2, y: height - 6, "text-anchor": "middle" }, svg, xLabel);
    svgEl("rect", { x: this.left, y: this.top, width: width - this.left - this.right, height: height - this.top - this.bottom,
      fill: "none", stroke: "#888" }, svg);
    this.lines = series.map((s) => svgEl("polyline", { fill: "none", stroke: s.color, "stroke-width": 2.2,
      ...(s.dash ? { "stroke-dasharray": s.dash } : {}) }, svg));
  }

  update(data) {
    const lg = (y) => Math.log10(Math.max(y, this.floor));
    const xs = data.flatMap((s) => s.xs);
    const ys = data.flatMap((s) => s.ys.map(lg));
    const x0 = Math.min(...xs, 0);
    const x1 = Math.max(...xs, 1);
    const y0 = Math.floor(Math.min(...ys, 0));
    const y1 = Math.max(Math.ceil(Math.max(...ys, 0)), y0 + 1);
    const X = linear(x0, x1, this.left, this.width - this.right);
    const Y = linear(y0, y1, this.height - this.bottom, this.top);
    const stride = Math.max(1, Math.ceil((y1 - y0) / 6));
    const decades = [];
    for (let e = y0; e <= y1; e += stride) decades.push(e);
    this.yticks.update(decades, Y, (e) => `1e${e}`);
    const xt = niceTicks(x0, x1, 4);
    this.xlabels.forEach((t, i) => {
      show(t, i < xt.length);
      if (i < xt.length) {
        setAttrs(t, { x: X(xt[i]).toFixed(1) });
        setText(t, tickLabel(xt[i]));
      }
    });
    data.forEach((s, j) => {
      setAttrs(this.lines[j], { points: s.xs.map((x, i) => `${X(x).toFixed(1)},${Y(lg(s.ys[i])).toFixed(1)}`).join(" ") });
    });
  }
}

/**
 * A <figure> `width` px wide in `parent`: `build(figure)` draws into it, then a caption follows.
 * Returns {item: what build returned, caption}.
 */
export function panel(parent, width, build) {
  const fig = document.createElement("figure");
  fig.className = "nclab-panel";
  fig.style.width = `${width}px`;
  const item = build(fig);
  const caption = document.createElement("figcaption");
  fig.append(caption);
  parent.append(fig);
  return { item, caption };
}

/** Set an element's innerHTML only if it changed since the last call. */
export function setHtml(e, html) {
  const m = memo(e);
  if (m[" html"] !== html) {
    e.innerHTML = html;
    m[" html"] = html;
  }
}
