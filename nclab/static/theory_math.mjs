// The closed-form optimum of the L-layer UFM (P), in the reader's browser.
//
// A port of nclab.data.profile, nclab.theory.global_minimizer and nclab.widgets.explorer_state
// (same conventions, same messages), so the explorers recompute in the static book with no
// kernel. tests/test_widgets.py runs this module under Node on a grid of settings and compares
// every output with the Python to 1e-9 relative.
//
// Where numpy computes an SVD, this module uses the structure of the target instead:
// * without a bias the target is D = diag(sqrt(n)): singular values sqrt(n_k), vectors e_k;
// * with a bias, Yhat Yhat^T = diag(n) - n n^T / N is a rank-one downdate of diag(n). A count
//   value v shared by m classes gives the eigenvalue v with multiplicity m - 1 (eigenvectors:
//   the zero-sum vectors on those classes); between consecutive distinct counts lies one root t
//   of the secular equation sum_k n_k / (n_k - t) = 0, with eigenvector u_k = n_k / (n_k - t);
//   and t = 0 has u = 1 / sqrt(K). Right singular vectors: v = Yhat^T u / s (v = sqrt(n/N) for
//   the null mode).
// Everything is plain arithmetic on K <= a few dozen numbers: well under a millisecond.

export const KINDS = ["balanced", "step", "long-tailed"];
// Distance, relative to the largest class mean, under which two optimal class means count as
// the same point (nclab.widgets._SAME_MEAN_RTOL).
const SAME_MEAN_RTOL = 1e-6;
// A mode within this fraction of s_thr is "near the threshold" (nclab.widgets._NEAR).
const NEAR = 0.05;

// ------------------------------------------------------------------------------ validation

function fail(message) {
  throw new RangeError(message);
}

function checkWhole(value, name, low, high = Infinity) {
  if (!Number.isInteger(value) || value < low || value > high) {
    const range = high === Infinity ? `>= ${low}` : `in [${low}, ${high}]`;
    fail(`${name} must be a whole number ${range}; got ${value}`);
  }
  return value;
}

function checkPositive(value, name) {
  if (typeof value !== "number" || !(value > 0 && value < Infinity)) {
    fail(`${name} must be a positive finite number (> 0); got ${value}`);
  }
  return value;
}

function checkRatio(value) {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 1) {
    fail(`ratio must be a finite number >= 1 (largest count / smallest count); got ${value}`);
  }
  return value;
}

// ------------------------------------------------------------------------------ counts

// Python's round(): halves go to the even neighbour (numpy.round does the same).
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** Class counts of a profile, as nclab.data.profile(kind, K, n_max, ratio). */
export function profile(kind, K, nMax, ratio = 1) {
  if (!KINDS.includes(kind)) fail(`kind must be one of 'balanced', 'step', 'long-tailed'; got '${kind}'`);
  checkWhole(K, "K", 2);
  checkWhole(nMax, kind === "balanced" ? "n" : "n_max", 1);
  if (kind === "balanced") return new Array(K).fill(nMax);
  checkRatio(ratio);
  if (kind === "step") {
    const KA = Math.floor((K + 1) / 2);
    const nB = Math.max(1, roundHalfEven(nMax / ratio));
    return Array.from({ length: K }, (_, k) => (k < KA ? nMax : nB));
  }
  return Array.from({ length: K }, (_, k) => Math.max(1, roundHalfEven(nMax * ratio ** (-k / (K - 1)))));
}

// ------------------------------------------------------------------------------ small linear algebra

const sum = (a) => a.reduce((acc, v) => acc + v, 0);
const norm = (a) => Math.sqrt(sum(a.map((v) => v * v)));
const zeros = (K) => Array.from({ length: K }, () => new Array(K).fill(0));

/** sum_i w_i a_i b_i^T for column vectors a_i, b_i (arrays of length K). */
function weightedOuter(weights, A, B) {
  const K = A[0].length;
  const G = zeros(K);
  weights.forEach((w, i) => {
    if (w === 0) return;
    for (let r = 0; r < K; r++) for (let c = 0; c < K; c++) G[r][c] += w * A[i][r] * B[i][c];
  });
  return G;
}

// ------------------------------------------------------------------------------ the spectrum

/** Distinct values of n, descending, with the class indices holding each. */
function groups(n) {
  const byValue = new Map();
  n.forEach((v, k) => byValue.set(v, [...(byValue.get(v) || []), k]));
  return [...byValue.entries()].sort((a, b) => b[0] - a[0]).map(([value, members]) => ({ value, members }));
}

/** Orthonormal basis of the zero-sum vectors supported on `members` (Helmert contrasts). */
function contrasts(members, K) {
  const basis = [];
  for (let r = 1; r < members.length; r++) {
    const u = new Array(K).fill(0);
    const scale = 1 / Math.sqrt(r * (r + 1));
    for (let j = 0; j < r; j++) u[members[j]] = scale;
    u[members[r]] = -r * scale;
    basis.push(u);
  }
  return basis;
}

/**
 * Root of f(t) = sum_j w_j / (v_j - t), w_j = m_j v_j (v_j: the distinct counts, m_j: how many
 * classes have each), between two consecutive distinct counts lo < hi.
 * f increases from -inf to +inf there. Newton's method safeguarded by bisection, in
 * mu = t - origin with the origin at the nearer pole, so that the differences
 * n_k - t = (n_k - origin) - mu keep their relative accuracy even for a root close to a count
 * (they give the eigenvector). Returns {origin, mu}.
 */
function secularRoot(weight, value, lo, hi) {
  const half = (hi - lo) / 2;
  let f0 = 0; // f at the midpoint decides the nearer pole
  for (let j = 0; j < value.length; j++) f0 += weight[j] / (value[j] - lo - half);
  const origin = f0 > 0 ? lo : hi;
  const shift = value.map((v) => v - origin); // exact: whole numbers
  let a = origin === lo ? 0 : -half; // f(origin + a) < 0 < f(origin + b)
  let b = origin === lo ? half : 0;
  let mu = origin === lo ? half / 2 : -half / 2;
  for (let it = 0; it < 200; it++) {
    let f = 0;
    let df = 0;
    for (let j = 0; j < shift.length; j++) {
      const q = 1 / (shift[j] - mu);
      f += weight[j] * q;
      df += weight[j] * q * q;
    }
    if (f < 0) a = mu;
    else b = mu;
    let next = mu - f / df;
    if (!(next > a && next < b)) next = a + (b - a) / 2; // Newton left the bracket: bisect
    const step = Math.abs(next - mu);
    mu = next;
    if (step <= 2e-16 * Math.abs(mu) || mu <= a || mu >= b) break;
  }
  return { origin, mu };
}

/**
 * Singular values and vectors of the target, descending: {s, U, V} with U[i], V[i] the i-th
 * left and right singular vectors (arrays of length K). T = Yhat with a bias, D without.
 */
export function targetSvd(n, bias) {
  const K = n.length;
  const N = sum(n);
  const modes = []; // {s, u, v}
  const gs = groups(n);
  if (!bias) {
    for (const g of gs) {
      for (const k of g.members) {
        const e = new Array(K).fill(0);
        e[k] = 1;
        modes.push({ s: Math.sqrt(g.value), u: e, v: e });
      }
    }
    return unzip(modes);
  }
  // repeated counts: eigenvalue v_j, eigenvectors = contrasts on the group, v = u
  for (const g of gs) {
    for (const u of contrasts(g.members, K)) modes.push({ s: Math.sqrt(g.value), u, v: u });
  }
  // one secular root between consecutive distinct counts
  const value = gs.map((g) => g.value);
  const weight = gs.map((g) => g.members.length * g.value);
  for (let j = 0; j + 1 < gs.length; j++) {
    const { origin, mu } = secularRoot(weight, value, value[j + 1], value[j]);
    const t = origin + mu;
    const raw = n.map((nk) => nk / (nk - origin - mu));
    const scale = norm(raw);
    const u = raw.map((x) => x / scale);
    const s = Math.sqrt(t);
    const mean = sum(n.map((nk, k) => nk * u[k])) / N; // n^T u / N
    modes.push({ s, u, v: n.map((nk, k) => (Math.sqrt(nk) * (u[k] - mean)) / s) });
  }
  // the null mode: 1^T Yhat = 0 and Yhat sqrt(n) = 0
  modes.push({ s: 0, u: new Array(K).fill(1 / Math.sqrt(K)), v: n.map((nk) => Math.sqrt(nk / N)) });
  modes.sort((a, b) => b.s - a.s);
  return unzip(modes);
}

function unzip(modes) {
  return { s: modes.map((m) => m.s), U: modes.map((m) => m.u), V: modes.map((m) => m.v) };
}

/** Interlacing bounds sqrt(n_(i+1)) <= s_i <= sqrt(n_(i)) (0 for the last index). */
export function interlacingBounds(n) {
  const root = [...n].sort((a, b) => b - a).map(Math.sqrt);
  return { lower: [...root.slice(1), 0], upper: [...root.slice(0, -1), 0] };
}

// ------------------------------------------------------------------------------ the scalar problem

/** c = (lam_H prod_l lam_W_l)^(1/(L+1)), one lam_W for every layer. */
export function effectiveC(lamW, lamH, L) {
  return Math.exp((Math.log(lamH) + L * Math.log(lamW)) / (L + 1));
}

/** s_thr = L (N c)^((L+1)/(2L)) (L-1)^(-(L-1)/(2L)); N c for L = 1. */
export function threshold(N, c, L) {
  const a = N * c;
  if (L === 1) return a;
  return L * a ** ((L + 1) / (2 * L)) * (L - 1) ** (-(L - 1) / (2 * L));
}

/** phi(x; s) = (x - s)^2 / (2N) + (L+1)/2 c x^(2/(L+1)). */
export function scalarObjective(x, s, N, c, L) {
  return (x - s) ** 2 / (2 * N) + ((L + 1) / 2) * c * x ** (2 / (L + 1));
}

/** Largest root of x + a x^(-p) = s, p = (L-1)/(L+1): Newton from x = s (convex, monotone). */
function largestRoot(s, a, L) {
  const p = (L - 1) / (L + 1);
  let x = s;
  for (let it = 0; it < 200; it++) {
    const g = x + a * x ** -p - s;
    const dg = 1 - p * a * x ** (-p - 1);
    const step = g / dg;
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(s, 1e-300)) break;
  }
  return x;
}

/** Global minimiser of phi(.; s): soft threshold for L = 1, a jump at s_thr for L >= 2. */
export function scalarMinimizer(s, N, c, L) {
  const a = N * c;
  if (L === 1) return Math.max(s - a, 0);
  return s >= threshold(N, c, L) ? largestRoot(s, a, L) : 0;
}

/** Per mode, the value of c above which it dies: (s (L-1)^((L-1)/(2L)) / L)^(2L/(L+1)) / N. */
export function criticalC(s, N, L) {
  const factor = L > 1 ? (L - 1) ** ((L - 1) / (2 * L)) / L : 1;
  return s.map((si) => (si * factor) ** ((2 * L) / (L + 1)) / N);
}

// ------------------------------------------------------------------------------ the optimum

/**
 * The global minimiser, as nclab.theory.global_minimizer(n, lamW, lamH, L=L, bias=bias) with
 * one lam_W for every layer. Returns {n, N, K, L, bias, c, s, U, V, x, threshold, omega, zeta,
 * objective, W_gram, M_gram, b, active, n_active}.
 */
export function globalMinimizer(n, lamW, lamH, L = 1, bias = true) {
  n.forEach((v, k) => checkWhole(v, `n[${k}]`, 1));
  if (n.length < 2) fail(`n must have at least K = 2 classes; got K = ${n.length}`);
  checkPositive(lamW, "lam_W");
  checkPositive(lamH, "lam_H");
  checkWhole(L, "L (number of linear layers)", 1);
  const K = n.length;
  const N = sum(n);
  const c = effectiveC(lamW, lamH, L);
  const { s, U, V } = targetSvd(n, bias);
  const x = s.map((si) => scalarMinimizer(si, N, c, L));
  const omega = x.map((xi) => Math.sqrt((c / lamW) ** L) * xi ** (L / (L + 1)));
  const zeta = x.map((xi) => Math.sqrt(c / lamH) * xi ** (1 / (L + 1)));
  const objective = sum(x.map((xi, i) => scalarObjective(xi, s[i], N, c, L)));
  const W_gram = weightedOuter(omega.map((w) => w * w), U, U);
  const VD = V.map((v) => v.map((vk, k) => vk / Math.sqrt(n[k]))); // D^-1 v
  const M_gram = weightedOuter(zeta.map((z) => z * z), VD, VD);
  const active = x.map((xi) => xi > 0);
  return {
    n: [...n], N, K, L, bias, c, s, U, V, x, threshold: threshold(N, c, L), omega, zeta, objective,
    W_gram, M_gram, b: n.map((nk) => (bias ? nk / N : 0)), active, n_active: active.filter(Boolean).length,
  };
}

// ------------------------------------------------------------------------------ what the explorer shows

/**
 * Python's format(value, f".{digits}g"), ties rounded to even as Python does (1234.5 -> "1234"
 * with 4 digits): the decimal digits come from toExponential(20), which is exact enough to see
 * a tie of a double.
 */
export function fmtG(value, digits = 3) {
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : value < 0 ? "-inf" : "nan";
  const [m, e] = Math.abs(value).toExponential(20).split("e");
  const all = m.replace(".", "");
  let keep = all.slice(0, digits);
  const rest = all.slice(digits);
  let exp = Number(e);
  const odd = Number(keep[keep.length - 1]) % 2 === 1;
  if (rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || odd))) {
    const up = String(Number(keep) + 1);
    if (up.length > keep.length) exp += 1;
    keep = up.slice(0, digits);
  }
  const sign = value < 0 ? "-" : "";
  const strip = (t) => (t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t);
  if (exp < -4 || exp >= digits) {
    const mantissa = strip(keep.length > 1 ? `${keep[0]}.${keep.slice(1)}` : keep);
    return `${sign}${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const fixed = exp >= 0 ? `${keep.slice(0, exp + 1)}.${keep.slice(exp + 1)}` : `0.${"0".repeat(-exp - 1)}${keep}`;
  return sign + strip(fixed);
}

const fmtList = (values, digits = 3) => `[${values.map((v) => fmtG(v, digits)).join(", ")}]`;
const pyList = (values) => `[${values.join(", ")}]`;

/** Class means and classifier rows in the orthonormal basis of the modes (K x K, rows = classes). */
function modeCoordinates(g) {
  const means = g.n.map((nk, k) => g.V.map((v, i) => (g.zeta[i] * v[k]) / Math.sqrt(nk)));
  const rows = g.n.map((_, k) => g.U.map((u, i) => g.omega[i] * u[k]));
  return { means, rows };
}

/** Groups (1-based, two or more classes) whose optimal class means coincide. */
function coincidingGroups(g) {
  const G = g.M_gram;
  const scale = Math.max(Math.sqrt(Math.max(...G.map((row, k) => row[k]))), 1e-300);
  const dist = (i, j) => Math.sqrt(Math.max(G[i][i] + G[j][j] - 2 * G[i][j], 0));
  const out = [];
  const seen = new Set();
  for (let k = 0; k < g.K; k++) {
    if (seen.has(k)) continue;
    const members = [];
    for (let j = 0; j < g.K; j++) if (dist(k, j) <= SAME_MEAN_RTOL * scale) members.push(j);
    members.forEach((j) => seen.add(j));
    if (members.length > 1) out.push(members.map((j) => j + 1));
  }
  return out;
}

function messagesFor(p, g, coinciding) {
  const nonzero = g.s.map((si) => si > 0);
  const nModes = nonzero.filter(Boolean).length;
  const thr = fmtG(g.threshold);
  const messages = [];
  let level = "ok";
  if (g.n_active === 0) {
    level = "warning";
    const predict = p.bias ? "the class frequencies b = n/N" : "zero logits";
    messages.push(
      `Every mode collapsed: the largest singular value s_1 = ${fmtG(g.s[0])} is below s_thr = ${thr}. ` +
        `W = 0 and every class mean is 0, so the model predicts ${predict} for every sample. ` +
        "Lower lambda_W or lambda_H to bring modes back.",
    );
  } else if (g.n_active < nModes) {
    level = "warning";
    const dead = g.s.map((_, i) => i).filter((i) => nonzero[i] && !g.active[i]).map((i) => i + 1);
    messages.push(`${g.n_active} of ${nModes} modes survive; mode(s) ${pyList(dead)} have s_i < s_thr = ${thr} and collapsed.`);
  } else {
    const which = nModes === 1 ? "The only nonzero mode survives" : `All ${nModes} nonzero modes survive`;
    messages.push(`${which} (s_i >= s_thr = ${thr}).`);
  }
  for (const group of coinciding) {
    messages.push(`Classes ${pyList(group)} have identical class means and classifier rows: minority collapse.`);
  }
  if (p.bias) messages.push("With a bias the null mode of Yhat (s_K = 0) always vanishes: classifier rows sum to zero.");
  if (p.bias && p.K === 2) messages.push("K = 2 with a bias: Yhat has rank 1, so the two class means lie on one line.");
  if (p.kind === "balanced" && p.ratio !== 1) messages.push("The ratio is ignored for the balanced profile.");
  const near = g.s.map((_, i) => i).filter((i) => nonzero[i] && Math.abs(g.s[i] - g.threshold) <= NEAR * g.threshold);
  if (near.length) {
    messages.push(`Mode(s) ${pyList(near.map((i) => i + 1))} sit within ${Math.round(NEAR * 100)}% of the threshold: small changes flip them.`);
  }
  if (p.L >= 2 && g.n_active) {
    messages.push(
      `Depth L = ${p.L}: a surviving mode jumps in at s_thr with x = s_thr (L-1)/L = ${fmtG((g.threshold * (p.L - 1)) / p.L)}; ` +
        "x = 0 stays a local minimum, so training can lose modes.",
    );
  }
  return { messages, level };
}

/**
 * Everything the theory explorer shows, as nclab.widgets.explorer_state(**p):
 * p = {kind, K, n_max, ratio, lam_W, lam_H, L, bias}.
 */
export function explorerState(p) {
  const n = profile(p.kind, p.K, p.n_max, p.ratio);
  const g = globalMinimizer(n, p.lam_W, p.lam_H, p.L, p.bias);
  const bounds = p.bias ? interlacingBounds(n) : { lower: null, upper: null };
  const coinciding = g.n_active ? coincidingGroups(g) : [];
  const { means, rows } = modeCoordinates(g);
  const { messages, level } = messagesFor(p, g, coinciding);
  const lines = [
    `profile ${p.kind}, K = ${p.K}, N = ${g.N}, counts n = ${fmtList(n, 4)}`,
    `c = ${fmtG(g.c)}, s_thr = ${fmtG(g.threshold)}, surviving modes: ${g.n_active}`,
    `s = ${fmtList(g.s)}`,
    `x = ${fmtList(g.x)}`,
    `f* = ${fmtG(g.objective, 4)}`,
  ];
  return {
    params: { ...p }, n, N: g.N, s: g.s, lower: bounds.lower, upper: bounds.upper, threshold: g.threshold,
    c: g.c, x: g.x, active: g.active, n_active: g.n_active, critical_c: criticalC(g.s, g.N, p.L),
    W_gram: g.W_gram, M_gram: g.M_gram, b: g.b, objective: g.objective, mean_coords: means,
    row_coords: rows, coinciding, messages, level, summary: [...lines, ...messages].join("\n"),
  };
}
