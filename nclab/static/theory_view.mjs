// The theory explorer's front end: controls, numbers, a per-mode table and four SVG panels,
// recomputed in the browser (theory_math.mjs) on every slider move. The same module runs in
// JupyterLab/Colab (anywidget) and in the static book (the embedded widget state).
//
// The table and the figures are built once (the figures again when the width changes) and
// updated in place; elements for more classes join pools and are hidden when K drops.
import { esc, svgEl, setAttrs, setText, setHtml, show, grow, linear, niceTicks, tickLabel, classColor, unitOf, frame, Heatmap, YTicks, panel } from "./svg.mjs";
import { slider, select, checkbox, bind, timed, availableWidth, explorerShell } from "./ui.mjs";
import { explorerState, fmtG, KINDS } from "./theory_math.mjs";

const PARAMS = ["kind", "K", "n_max", "ratio", "lam_W", "lam_H", "L", "bias"];
const BLUE = "#1f77b4";
const RED = "#c0392b";

/** An integer slider's range, sent from Python as [min, max, step] (nclab.widgets.SLIDER_GRIDS). */
const range = ([min, max, step]) => ({ min, max, step });

function makeControls(model, id) {
  const grids = model.get("grids");
  const g = (name) => model.get(name);
  return [
    select({ id: `${id}-kind`, name: "kind", label: "profile", value: g("kind"), options: KINDS }),
    slider({ id: `${id}-K`, name: "K", label: "K (classes)", value: g("K"), ...range(grids.K) }),
    slider({ id: `${id}-n_max`, name: "n_max", label: "n_max (largest class)", value: g("n_max"), ...range(grids.n_max) }),
    slider({ id: `${id}-ratio`, name: "ratio", label: "ratio n_max / n_min", value: g("ratio"), values: grids.ratio, format: (v) => fmtG(v, 3) }),
    slider({ id: `${id}-lam_W`, name: "lam_W", label: "λ_W (weight decay)", value: g("lam_W"), values: grids.lam, format: (v) => fmtG(v, 3) }),
    slider({ id: `${id}-lam_H`, name: "lam_H", label: "λ_H (feature decay)", value: g("lam_H"), values: grids.lam, format: (v) => fmtG(v, 3) }),
    slider({ id: `${id}-L`, name: "L", label: "depth L (layers)", value: g("L"), ...range(grids.L) }),
    checkbox({ id: `${id}-bias`, name: "bias", label: "unregularised bias", value: g("bias") }),
  ];
}

/** A number on the page: shown rounded, with its exact value in data-value (read by tests). */
function setNumber(span, value, digits) {
  setText(span, fmtG(value, digits));
  setAttrs(span, { "data-value": value });
}

function numberSpan(key, mode = null) {
  const span = document.createElement("span");
  span.dataset.nclab = key;
  if (mode !== null) span.dataset.mode = String(mode);
  return span;
}

/** The line of numbers above the messages. */
class Readout {
  constructor(parent) {
    this.p = document.createElement("p");
    this.p.className = "nclab-readout";
    const s = Object.fromEntries(["n", "N", "c", "threshold", "n_active", "objective"].map((k) => [k, numberSpan(k)]));
    const sub = document.createElement("sub");
    sub.textContent = "thr";
    this.p.append("counts n = ", s.n, ", N = ", s.N, document.createElement("br"), "c = ", s.c, ", s", sub, " = ",
      s.threshold, ", surviving modes: ", s.n_active, ", f* = ", s.objective);
    this.spans = s;
    parent.append(this.p);
  }

  update(st) {
    const s = this.spans;
    setText(s.n, `[${st.n.join(", ")}]`);
    setNumber(s.N, st.N, 8);
    setNumber(s.c, st.c, 4);
    setNumber(s.threshold, st.threshold, 4);
    setNumber(s.n_active, st.n_active, 4);
    setNumber(s.objective, st.objective, 4);
  }
}

/** The per-mode table; rows are a pool (a new K shows or hides them). */
class ModeTable {
  constructor(parent) {
    const table = document.createElement("table");
    table.className = "nclab-modes";
    table.innerHTML =
      "<caption>modes of the target, strongest first: singular value s<sub>i</sub>, optimal x<sub>i</sub>, " +
      "and the strength c at which the mode dies</caption><thead><tr><th scope=\"col\">mode</th>" +
      "<th scope=\"col\">s<sub>i</sub></th><th scope=\"col\">x<sub>i</sub></th><th scope=\"col\">survives</th>" +
      "<th scope=\"col\">dies at c</th></tr></thead>";
    this.body = document.createElement("tbody");
    table.append(this.body);
    parent.append(table);
    this.rows = [];
  }

  row(i) {
    const tr = document.createElement("tr");
    const cells = { tr, s: numberSpan("s", i), x: numberSpan("x", i), active: numberSpan("active", i), critical_c: numberSpan("critical_c", i) };
    for (const c of [String(i + 1), cells.s, cells.x, cells.active, cells.critical_c]) {
      const td = document.createElement("td");
      td.append(c);
      tr.append(td);
    }
    this.body.append(tr);
    return cells;
  }

  update(st) {
    const K = st.s.length;
    grow(this.rows, K, () => this.row(this.rows.length));
    this.rows.forEach((r, i) => {
      if (r.hidden !== i >= K) r.tr.hidden = r.hidden = i >= K;
      if (i >= K) return;
      setNumber(r.s, st.s[i], 4);
      setNumber(r.x, st.x[i], 4);
      setText(r.active, st.active[i] ? "yes" : "no");
      setNumber(r.critical_c, st.critical_c[i], 3);
    });
  }
}

/** Singular values of the target, the threshold, the optimal x_i and the interlacing bounds. */
class Spectrum {
  constructor(width, parent) {
    Object.assign(this, { width, left: 50, right: 12, top: 30, bottom: 46, height: 270, K: 0, marks: [], xlabels: [] });
    const { svg, titleEl } = frame(width, this.height, "spectrum of the target", parent);
    const { left, right, top, bottom, height } = this;
    this.svg = svg;
    this.titleEl = titleEl;
    this.yticks = new YTicks(svg, left, width - right);
    this.layer = svgEl("g", {}, svg); // bounds, then the marks above them
    this.thr = svgEl("line", { x1: left, x2: width - right, stroke: RED, "stroke-width": 2, "stroke-dasharray": "7 4" }, svg);
    this.thrLabel = svgEl("text", { class: "nclab-thr", x: width - right - 4, "text-anchor": "end" }, svg, "s_thr");
    this.dots = svgEl("g", {}, svg);
    svgEl("text", { class: "nclab-note", x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle" }, svg, "mode i");
    svgEl("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, fill: "none", stroke: "#888" }, svg);
  }

  /** Place the marks of K modes (only when K changes). */
  layout(K) {
    const band = (this.width - this.left - this.right) / K;
    const X = (i) => this.left + (i + 0.5) * band;
    const w = Math.min(12, band / 2.5);
    grow(this.marks, K, () => {
      const bound = svgEl("rect", { fill: "#d9d9d9" }, this.layer);
      const dot = svgEl("circle", { r: 6.5, stroke: BLUE, "stroke-width": 2.2 }, this.dots);
      const x = svgEl("line", { stroke: "#111", "stroke-width": 3.5 }, this.dots);
      const label = svgEl("text", { y: this.height - this.bottom + 20, "text-anchor": "middle" }, this.svg);
      return { bound, dot, dotTip: svgEl("title", {}, dot), x, xTip: svgEl("title", {}, x), label };
    });
    const every = band < 26 ? 2 : 1;
    this.marks.forEach((m, i) => {
      const on = i < K;
      for (const e of [m.bound, m.dot, m.x]) show(e, on);
      show(m.label, on && i % every === 0);
      if (!on) return;
      setAttrs(m.bound, { x: (X(i) - band / 4).toFixed(1), width: (band / 2).toFixed(1) });
      setAttrs(m.dot, { cx: X(i).toFixed(1) });
      setAttrs(m.x, { x1: (X(i) - w).toFixed(1), x2: (X(i) + w).toFixed(1) });
      setAttrs(m.label, { x: X(i).toFixed(1) });
      setText(m.label, i + 1);
    });
    this.K = K;
  }

  update(st) {
    const K = st.s.length;
    if (K !== this.K) this.layout(K);
    setText(this.titleEl, st.params.bias ? "spectrum of Ŷ (with bias)" : "spectrum of D (no bias)");
    const ymax = 1.12 * Math.max(st.s[0], st.threshold, st.upper ? st.upper[0] : 0) || 1;
    const Y = linear(0, ymax, this.height - this.bottom, this.top);
    this.yticks.update(niceTicks(0, ymax, 4), Y, tickLabel);
    const yt = Y(st.threshold).toFixed(1);
    setAttrs(this.thr, { y1: yt, y2: yt });
    setAttrs(this.thrLabel, { y: (Y(st.threshold) - 6).toFixed(1) });
    for (let i = 0; i < K; i++) {
      const m = this.marks[i];
      const bounded = Boolean(st.lower) && st.upper[i] > 0;
      show(m.bound, bounded);
      if (bounded) setAttrs(m.bound, { y: Y(st.upper[i]).toFixed(1), height: Math.max(Y(st.lower[i]) - Y(st.upper[i]), 1).toFixed(1) });
      setAttrs(m.dot, { cy: Y(st.s[i]).toFixed(1), fill: st.active[i] ? BLUE : "#fff" });
      setText(m.dotTip, `s_${i + 1} = ${fmtG(st.s[i], 4)}`);
      setAttrs(m.x, { y1: Y(st.x[i]).toFixed(1), y2: Y(st.x[i]).toFixed(1) });
      setText(m.xTip, `x_${i + 1} = ${fmtG(st.x[i], 4)}`);
    }
  }
}

/** Class means (solid) and classifier rows (dashed, rescaled) in the plane of modes 1 and 2. */
class Geometry {
  constructor(width, parent) {
    const side = Math.max(200, Math.min(width, 360));
    Object.assign(this, { side, top: 52, pad: 16, items: [], labels: [] });
    const { svg } = frame(side, this.top + side - 2 * this.pad + 8, "means and classifier rows", parent);
    this.svg = svg;
    svgEl("text", { class: "nclab-note", x: side / 2, y: 40, "text-anchor": "middle" }, svg, "plane of modes 1 and 2");
    this.mid = this.top + side / 2 - this.pad;
    svgEl("line", { x1: this.pad, x2: side - this.pad, y1: this.mid, y2: this.mid, stroke: "#ccc" }, svg);
    svgEl("line", { x1: side / 2, x2: side / 2, y1: this.top, y2: this.top + side - 2 * this.pad, stroke: "#ccc" }, svg);
    this.arrows = svgEl("g", {}, svg);
    this.text = svgEl("g", {}, svg);
    this.zero = svgEl("text", { class: "nclab-warn", x: side / 2, y: this.mid - 30, "text-anchor": "middle" }, svg, "every class mean is 0");
  }

  item(k) {
    const c = classColor(k);
    const o = { x1: this.side / 2, y1: this.mid };
    const row = svgEl("line", { ...o, stroke: c, "stroke-width": 2, "stroke-dasharray": "6 4" }, this.arrows);
    const rowEnd = svgEl("circle", { r: 5, fill: "#fff", stroke: c, "stroke-width": 2 }, this.arrows);
    const mean = svgEl("line", { ...o, stroke: c, "stroke-width": 3 }, this.arrows);
    const meanEnd = svgEl("circle", { r: 5.5, fill: c }, this.arrows);
    return { row, rowEnd, mean, meanEnd, tip: svgEl("title", {}, meanEnd) };
  }

  /** Returns the factor applied to the classifier rows. */
  update(st) {
    const K = st.n.length;
    const pt = (coords) => [coords[0] || 0, coords[1] || 0];
    const means = st.mean_coords.map(pt);
    const rows = st.row_coords.map(pt);
    const len = (a) => Math.hypot(a[0], a[1]);
    const mMax = Math.max(...means.map(len));
    const rMax = Math.max(...rows.map(len));
    const factor = mMax > 0 && rMax > 0 ? mMax / rMax : 1;
    const R = 1.18 * Math.max(mMax, rMax * factor) || 1;
    const S = linear(-R, R, this.pad, this.side - this.pad);
    const T = linear(-R, R, this.top + this.side - 2 * this.pad, this.top);
    grow(this.items, K, () => this.item(this.items.length));
    this.items.forEach((it, k) => {
      for (const e of [it.row, it.rowEnd, it.mean, it.meanEnd]) show(e, k < K);
      if (k >= K) return;
      const [rx, ry] = [S(rows[k][0] * factor).toFixed(1), T(rows[k][1] * factor).toFixed(1)];
      const [mx, my] = [S(means[k][0]).toFixed(1), T(means[k][1]).toFixed(1)];
      setAttrs(it.row, { x2: rx, y2: ry });
      setAttrs(it.rowEnd, { cx: rx, cy: ry });
      setAttrs(it.mean, { x2: mx, y2: my });
      setAttrs(it.meanEnd, { cx: mx, cy: my });
      setText(it.tip, `class ${k + 1} (n = ${st.n[k]})`);
    });
    // one label per point: classes whose means coincide on screen share it ("3=4")
    const groups = new Map();
    means.forEach(([mx, my], k) => {
      const key = `${Math.round(S(mx) / 3)},${Math.round(T(my) / 3)}`;
      groups.set(key, [...(groups.get(key) || []), k]);
    });
    const labelled = [...groups.values()];
    grow(this.labels, labelled.length, () => svgEl("text", { class: "nclab-label", "text-anchor": "middle", "dominant-baseline": "central" }, this.text));
    this.labels.forEach((text, j) => {
      show(text, j < labelled.length);
      if (j >= labelled.length) return;
      const ks = labelled[j];
      const [mx, my] = means[ks[0]];
      const r = Math.hypot(mx, my);
      const [ux, uy] = r > 0 ? [mx / r, my / r] : [0.7, 0.7];
      setAttrs(text, { x: (S(mx) + 16 * ux).toFixed(1), y: (T(my) - 16 * uy).toFixed(1), style: `fill:${classColor(ks[ks.length - 1])}` });
      setText(text, ks.map((k) => k + 1).join("="));
    });
    show(this.zero, mMax === 0);
    return factor;
  }
}

/** The four panels, for one panel width. */
class Figures {
  static panelWidth(width) {
    const gap = 24;
    return Math.floor(Math.min(400, width >= 2 * 300 + gap ? (width - gap) / 2 : width));
  }

  constructor(width, parent) {
    const pw = Figures.panelWidth(width);
    this.pw = pw;
    this.spectrum = panel(parent, pw, (fig) => new Spectrum(pw, fig));
    this.geometry = panel(parent, pw, (fig) => new Geometry(pw, fig));
    this.W = panel(parent, pw, (fig) => new Heatmap(pw, "W Wᵀ (classifier Gram)", fig));
    this.M = panel(parent, pw, (fig) => new Heatmap(pw, "Mᵀ M (class-mean Gram)", fig));
  }

  update(st) {
    this.spectrum.item.update(st);
    setHtml(this.spectrum.caption, `<span class="nclab-key" style="color:${BLUE}">●</span> s<sub>i</sub> survives, ` +
      `<span class="nclab-key" style="color:${BLUE}">○</span> collapses; <b>▬</b> optimal x<sub>i</sub>; ` +
      `<span style="color:${RED}">- - -</span> s<sub>thr</sub>${st.lower ? "; grey: interlacing bounds" : ""}`);
    const factor = this.geometry.item.update(st);
    const coincide = st.coinciding.length ? ` Classes ${st.coinciding.map((g) => g.join(" = ")).join("; ")} coincide.` : "";
    setText(this.geometry.caption, `solid: class means (●); dashed: classifier rows (○)${factor !== 1 ? `, scaled ×${fmtG(factor, 3)}` : ""}.${coincide}`);
    const none = st.n_active === 0;
    const hover = st.n.length > 6 ? " (hover a cell for its value)" : "";
    const wu = unitOf(st.W_gram);
    const mu = unitOf(st.M_gram);
    this.W.item.update(st.W_gram, { unit: wu.unit, subtitle: wu.label, emptyNote: none ? "W = 0: every mode collapsed" : "" });
    this.M.item.update(st.M_gram, { unit: mu.unit, subtitle: mu.label, emptyNote: none ? "M = 0: every mode collapsed" : "" });
    setText(this.W.caption, `the classifier rows' inner products${hover}`);
    setText(this.M.caption, `the class means' inner products${hover}`);
  }
}

function render({ model, el }) {
  const { root, controls, summary } = explorerShell("theory", "settings of the theory explorer", (id) => makeControls(model, id));
  const readout = new Readout(summary);
  const messages = document.createElement("ul");
  summary.append(messages);
  const error = document.createElement("p");
  error.className = "nclab-error";
  summary.append(error);
  const tableWrap = document.createElement("div");
  tableWrap.className = "nclab-table-wrap";
  const figureWrap = document.createElement("div");
  figureWrap.className = "nclab-figures";
  root.append(tableWrap, figureWrap);
  el.append(root);

  const byName = Object.fromEntries(controls.map((c) => [c.name, c]));
  const table = new ModeTable(tableWrap);
  let state = null;
  let figures = null;
  const draw = () => {
    const width = availableWidth(root);
    if (!figures || figures.pw !== Figures.panelWidth(width)) {
      figureWrap.replaceChildren();
      figures = new Figures(width, figureWrap);
    }
    readout.update(state);
    table.update(state);
    figures.update(state);
  };
  const update = () =>
    timed(root, () => {
      const p = Object.fromEntries(PARAMS.map((k) => [k, byName[k].get()]));
      byName.ratio.input.disabled = p.kind === "balanced";
      try {
        state = explorerState(p);
      } catch (err) {
        state = null;
        setText(error, `Cannot compute this setting: ${err.message}`);
        root.classList.add("nclab-invalid");
        return;
      }
      setText(error, "");
      root.classList.remove("nclab-invalid");
      setAttrs(messages, { class: `nclab-messages nclab-${state.level}` });
      setHtml(messages, state.messages.map((m) => `<li>${esc(m)}</li>`).join(""));
      draw();
    });
  bind(model, controls, update);
  update();
  const observer = new ResizeObserver(() => {
    if (state && figures && figures.pw !== Figures.panelWidth(availableWidth(root))) draw();
  });
  observer.observe(root);
  return () => observer.disconnect();
}

export default { render };
