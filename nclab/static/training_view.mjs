// The training view's front end: step through UFM runs trained when the book was built
// (nclab.widgets.training_runs, stored in the widget state) and compare each with the closed
// form, which is recomputed here (theory_math.mjs). No kernel needed.
import { setText, setHtml, unitOf, Heatmap, LogLines, panel } from "./svg.mjs";
import { slider, select, checkbox, bind, timed, availableWidth, explorerShell } from "./ui.mjs";
import { globalMinimizer, fmtG } from "./theory_math.mjs";

const AXES = ["ratio", "lam", "L", "bias", "init"];
const key = (sel) => JSON.stringify(AXES.map((k) => sel[k]));

function makeControls(model, axes, id) {
  const g = (name) => model.get(name);
  const controls = [
    slider({ id: `${id}-ratio`, name: "ratio", label: "ratio n_max / n_min", value: g("ratio"), values: axes.ratio, format: (v) => fmtG(v, 3) }),
    slider({ id: `${id}-lam`, name: "lam", label: "λ (all layers and H)", value: g("lam"), values: axes.lam, format: (v) => fmtG(v, 3) }),
    slider({ id: `${id}-L`, name: "L", label: "depth L (layers)", value: g("L"), values: axes.L }),
    checkbox({ id: `${id}-bias`, name: "bias", label: "unregularised bias", value: g("bias") }),
    select({ id: `${id}-init`, name: "init", label: "initialisation", value: g("init"), options: axes.init }),
  ];
  if (axes.bias.length < 2) controls[3].input.disabled = true;
  return controls;
}

function verdict(run, theory) {
  if (run.n_modes === theory.n_active && Math.abs(run.gap) < 1e-4) {
    return `<span class="nclab-verdict-ok">reached the closed-form optimum</span>`;
  }
  const lost = run.n_modes !== theory.n_active ? "it lost or kept a spurious mode (x = 0 is a local minimum for L ≥ 2); " : "";
  return `<span class="nclab-verdict-bad">did not reach the optimum: ${lost}a larger initialisation or restarts help</span>`;
}

const num = (k, v, shown) => `<span data-nclab="${k}" data-value="${v}">${shown}</span>`;

function summaryHtml(run, theory, d) {
  const gap = Math.abs(run.gap) < 1e-10 ? "below 1e-10" : fmtG(run.gap, 3);
  return (
    `<p class="nclab-readout">${verdict(run, theory)}<br>counts n = <span data-nclab="n">[${run.n.join(", ")}]</span>, ` +
    `d = ${d}; ${run.steps} L-BFGS iterations<br>objective ${num("trained_objective", run.objective, fmtG(run.objective, 6))}, ` +
    `theory f* = ${num("objective", theory.objective, fmtG(theory.objective, 6))}, relative gap ${num("gap", run.gap, gap)}<br>` +
    `surviving modes: ${num("n_modes", run.n_modes, run.n_modes)} trained, ${num("n_active", theory.n_active, theory.n_active)} in theory</p>`
  );
}

/** The history chart and the four Gram heat maps, for one width. */
class Figures {
  static layout(width) {
    const gap = 24;
    return { full: Math.floor(Math.min(width, 624)), pw: Math.floor(Math.min(300, width >= 2 * 200 + gap ? (width - gap) / 2 : width)) };
  }

  constructor(width, parent) {
    const { full, pw } = Figures.layout(width);
    this.key = `${full}|${pw}`;
    this.history = panel(parent, full, (fig) => new LogLines([{ color: "#1f77b4" }, { color: "#ff7f0e", dash: "7 4" }],
      { width: full, title: "training history", xLabel: "L-BFGS iteration" }, fig));
    this.history.caption.innerHTML = `<span style="color:#1f77b4">—</span> relative gap |f − f*| / f*, ` +
      `<span style="color:#ff7f0e">- -</span> NC1 (within-class variability); values below 1e-16 drawn at 1e-16`;
    this.maps = ["W Wᵀ", "Mᵀ M"].map((name) => ({
      trained: panel(parent, pw, (fig) => new Heatmap(pw, `trained ${name}`, fig)),
      theory: panel(parent, pw, (fig) => new Heatmap(pw, `theory ${name}`, fig)),
    }));
    this.maps.forEach((m) => setText(m.theory.caption, "closed form at the same setting"));
  }

  update(run, theory) {
    const h = run.history;
    this.history.item.update([{ xs: h.step, ys: h.gap.map(Math.abs) }, { xs: h.step, ys: h.nc1 }]);
    const pairs = [[run.W_gram, theory.W_gram, run.dist.W_gram, "dist_W"], [run.M_gram, theory.M_gram, run.dist.M_gram, "dist_M"]];
    pairs.forEach(([trained, predicted, err, name], j) => {
      const u = unitOf(trained, predicted);
      let vmax = 0;
      for (const G of [trained, predicted]) for (const row of G) for (const v of row) vmax = Math.max(vmax, Math.abs(v));
      const zero = (G) => (G.every((row) => row.every((v) => v === 0)) ? "all zero" : "");
      this.maps[j].trained.item.update(trained, { vmax, unit: u.unit, subtitle: u.label, emptyNote: zero(trained) });
      this.maps[j].theory.item.update(predicted, { vmax, unit: u.unit, subtitle: u.label, emptyNote: zero(predicted) });
      setHtml(this.maps[j].trained.caption, `relative error to theory <span data-nclab="${name}" data-value="${err}">${fmtG(err, 2)}</span>`);
    });
  }
}

function render({ model, el }) {
  const data = model.get("runs");
  const byKey = new Map(data.runs.map((r) => [key(r), r]));
  const { root, controls, summary } = explorerShell("training", "settings of the training view", (id) => makeControls(model, data.axes, id));
  const note = document.createElement("p");
  const p = data.profile;
  note.textContent = `${data.runs.length} runs of nclab.train (L-BFGS, features as free parameters), ${p.kind} profile, ` +
    `K = ${p.K}, n_max = ${p.n_max}, trained when this page was built. `;
  const initNote = document.createElement("span");
  note.append(initNote);
  const figureWrap = document.createElement("div");
  figureWrap.className = "nclab-figures";
  root.append(note, figureWrap);
  el.append(root);

  let current = null;
  let figures = null;
  const shapeKey = () => {
    const { full, pw } = Figures.layout(availableWidth(root));
    return `${full}|${pw}`;
  };
  const draw = () => {
    if (!figures || figures.key !== shapeKey()) {
      figureWrap.replaceChildren();
      figures = new Figures(availableWidth(root), figureWrap);
    }
    figures.update(current.run, current.theory);
  };
  const update = () =>
    timed(root, () => {
      const sel = Object.fromEntries(controls.map((c) => [c.name, c.get()]));
      setText(initNote, `Initialisation "${sel.init}": ${data.init_labels[sel.init] || ""}`);
      const run = byKey.get(key(sel));
      if (!run) {
        current = null;
        setHtml(summary, `<p class="nclab-error">No stored run for this setting.</p>`);
        figureWrap.replaceChildren();
        figures = null;
        return;
      }
      current = { run, theory: globalMinimizer(run.n, sel.lam, sel.lam, sel.L, sel.bias) };
      setHtml(summary, summaryHtml(run, current.theory, data.d));
      draw();
    });
  bind(model, controls, update);
  update();
  const observer = new ResizeObserver(() => {
    if (current && figures && figures.key !== shapeKey()) draw();
  });
  observer.observe(root);
  return () => observer.disconnect();
}

export default { render };
