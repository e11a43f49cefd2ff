// Controls shared by the explorers: native, labelled, keyboard-operable inputs whose current
// value is always written beside them, and the glue to the widget model.

let counter = 0;

/** A page-unique id prefix for one explorer (labels need ids; a page can hold several explorers). */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

function row(id, label, input, output) {
  const div = document.createElement("div");
  div.className = "nclab-row";
  const lab = document.createElement("label");
  lab.htmlFor = id;
  lab.textContent = label;
  div.append(lab, input);
  if (output) div.append(output);
  return div;
}

/**
 * A slider over a list of values (`values`, e.g. a log grid) or over min..max by step.
 * The input moves over indices for a list, so every position is an exact value of the list.
 * Returns {name, row, input, get, set}; `format` writes the value beside the slider.
 */
export function slider({ id, name, label, value, values = null, min, max, step = 1, format = String }) {
  values = values ? [...values] : null; // own copy: set() may add a value
  const input = document.createElement("input");
  input.type = "range";
  input.id = id;
  input.name = name;
  if (values) {
    input.min = "0";
    input.max = String(values.length - 1);
    input.step = "1";
  } else {
    input.min = String(min);
    input.max = String(max);
    input.step = String(step);
  }
  const output = document.createElement("output");
  output.htmlFor = id;
  output.dataset.nclabParam = name;
  const get = () => (values ? values[Number(input.value)] : Number(input.value));
  const show = () => {
    const v = get();
    output.textContent = format(v);
    output.dataset.value = String(v);
    input.setAttribute("aria-valuetext", format(v));
  };
  const set = (v) => {
    if (values) {
      // a value off the list (set from Python) joins it, so the slider shows exactly that value
      if (!values.includes(v) && Number.isFinite(v)) {
        values.push(v);
        values.sort((a, b) => a - b);
        input.max = String(values.length - 1);
      }
      input.value = String(Math.max(0, values.indexOf(v)));
    } else {
      input.value = String(v);
    }
    show();
  };
  set(value);
  input.addEventListener("input", show);
  return { name, row: row(id, label, input, output), input, get, set };
}

/** A drop-down list of strings. */
export function select({ id, name, label, value, options }) {
  const input = document.createElement("select");
  input.id = id;
  input.name = name;
  for (const opt of options) {
    const o = document.createElement("option");
    o.value = opt;
    o.textContent = opt;
    input.append(o);
  }
  input.value = value;
  return { name, row: row(id, label, input, null), input, get: () => input.value, set: (v) => { input.value = v; } };
}

/** A checkbox. */
export function checkbox({ id, name, label, value }) {
  const input = document.createElement("input");
  input.type = "checkbox";
  input.id = id;
  input.name = name;
  input.checked = Boolean(value);
  const r = row(id, label, input, null);
  r.classList.add("nclab-check");
  return { name, row: r, input, get: () => input.checked, set: (v) => { input.checked = Boolean(v); } };
}

/**
 * Wire controls to a widget model: every move calls `update` at once; the value is sent to the
 * kernel (when there is one) when the move ends; a value set from Python moves the control.
 * In the static book the model has no kernel behind it: saving is then a no-op.
 */
export function bind(model, controls, update) {
  for (const c of controls) {
    c.input.addEventListener(c.input.type === "range" ? "input" : "change", update);
    c.input.addEventListener("change", () => {
      model.set(c.name, c.get());
      try {
        model.save_changes();
      } catch (err) {
        // no comm channel: a static page, nothing to save to
      }
    });
    model.on(`change:${c.name}`, () => {
      const v = model.get(c.name);
      if (v !== c.get()) {
        c.set(v);
        update();
      }
    });
  }
}

/** Run `fn`, force the layout it causes, and record the time in `root.nclabTimings` (ms). */
export function timed(root, fn) {
  const start = performance.now();
  fn();
  void root.offsetHeight; // include style and layout, not only the script
  const times = root.nclabTimings || (root.nclabTimings = []);
  times.push(performance.now() - start);
  if (times.length > 5000) times.splice(0, times.length - 5000);
}

/** Width available to the figures (the explorer's own width, or a fallback before layout). */
export function availableWidth(el, fallback = 380) {
  const w = el.getBoundingClientRect().width;
  return w > 0 ? w : fallback;
}

/**
 * The frame of an explorer: a root <div class="nclab-explorer nclab-{kind}"> whose first row
 * holds the controls (a <form>, built by makeControls(idPrefix)) beside a live summary <div>.
 * Returns {root, controls, summary}; the caller appends the rest to root.
 */
export function explorerShell(kind, label, makeControls) {
  const id = uniqueId(`nclab-${kind}`);
  const root = document.createElement("div");
  root.className = `nclab-explorer nclab-${kind}`;
  root.id = id;
  const controls = makeControls(id);
  const form = document.createElement("form");
  form.className = "nclab-controls";
  form.setAttribute("aria-label", label);
  form.addEventListener("submit", (e) => e.preventDefault());
  controls.forEach((c) => form.append(c.row));
  const summary = document.createElement("div");
  summary.className = "nclab-summary";
  summary.setAttribute("aria-live", "polite");
  const top = document.createElement("div");
  top.className = "nclab-top";
  top.append(form, summary);
  root.append(top);
  return { root, controls, summary };
}
