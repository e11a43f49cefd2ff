"""The objective (P) of the L-layer unconstrained feature model, for numpy or torch arrays.

.. math::

    f = \\frac{1}{2N}\\lVert W_L\\cdots W_1 H + b\\,\\mathbf 1^\\top - Y\\rVert_F^2
        + \\sum_l \\frac{\\lambda_{W_l}}{2}\\lVert W_l\\rVert_F^2
        + \\frac{\\lambda_H}{2}\\lVert H\\rVert_F^2 \\; (+ \\tfrac{\\lambda_b}{2}\\lVert b\\rVert^2)

This is the normalisation of Dang et al. (ICML 2023) used throughout the book; Liu (2024)
studies it with an unregularised bias. For fixed layers, (P) is a ridge regression in the
features and the bias, whose minimiser :func:`exact_features` is collapsed (``H = M Y``); at
such a point :func:`collapsed_objective` evaluates (P) from the class means alone. The same function evaluates a numpy point (tests,
closed-form constructions) and a torch point (the trainer differentiates through it), and a
*batch* of points: every array may carry leading batch dimensions, and each strength may be a
scalar or an array over the batch.

Arguments are checked up front (:mod:`nclab._validate`): shapes always, values of numpy
arrays and of scalar strengths always, values inside torch tensors not (that would stop a
GPU at every evaluation of the trainer's inner loop; :func:`nclab.train` checks its own
input once).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from . import _validate

__all__ = [
    "product",
    "ufm_objective",
    "collapsed_objective",
    "exact_features",
    "projected_objective",
    "projected_value_and_grad",
]


def product(layers: Sequence[Any]) -> Any:
    """Product classifier ``W = W_L ... W_1`` of the layers ``[W_1, ..., W_L]``.

    Parameters
    ----------
    layers : sequence of arrays
        ``W_1..W_{L-1}`` of shape (..., d, d) and ``W_L`` of shape (..., K, d).

    Returns
    -------
    array, shape (..., K, d)

    Raises
    ------
    ValueError
        No layers, a layer that is not a (batch of) matrices, or shapes that do not chain.
    """
    return _product(_layers(layers))


def _product(layers: list) -> Any:
    """:func:`product` of checked layers."""
    W = layers[0]
    for layer in layers[1:]:
        W = layer @ W
    return W


def _matrix(a: Any, name: str, min_ndim: int = 2) -> Any:
    """A torch tensor as it is (shape checked), or a finite float numpy array."""
    if _validate.is_tensor(a):
        if a.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {tuple(a.shape)}")
        return a
    arr = _validate.array(a, name, allow_empty=True)
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {arr.shape}")
    return arr


def _layers(layers: Any) -> list:
    """``[W_1, ..., W_L]`` checked: at least one matrix, and ``W_{l+1} W_l`` defined for each l."""
    if not isinstance(layers, (list, tuple)):
        raise _validate.ArgumentTypeError(f"layers must be a list [W_1, ..., W_L] of matrices; got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must hold at least one matrix (W_1); got an empty list")
    out = list(layers)
    for i, W in enumerate(out):
        if not (_validate.is_tensor(W) and W.ndim >= 2):  # tensors: the fast path of the trainer
            out[i] = _matrix(W, f"layers[{i}]")
    for i in range(1, len(out)):
        if out[i].shape[-1] != out[i - 1].shape[-2]:
            raise ValueError(
                f"layers[{i}] must have {out[i - 1].shape[-2]} columns to multiply layers[{i - 1}] of shape "
                f"{tuple(out[i - 1].shape)}; got shape {tuple(out[i].shape)}"
            )
    return out


def _strength(lam: Any, name: str, *, strict: bool = False) -> Any:
    """A strength: a number or numpy array (>= 0, or > 0 if ``strict``), or a torch tensor as it is."""
    if type(lam) is float and (lam > 0 if strict else lam >= 0) and lam < math.inf:
        return lam
    if _validate.is_tensor(lam):
        return lam
    check = _validate.positive if strict else _validate.nonneg
    if isinstance(lam, (int, float, str, bytes)) or np.ndim(lam) == 0:
        return check(lam, name)
    arr = _validate.array(lam, name)
    if np.any(arr <= 0) if strict else np.any(arr < 0):
        raise ValueError(f"{name} must have entries {'> 0' if strict else '>= 0'}; got minimum {arr.min():g}")
    return arr


def _layer_strengths(lam_W: Any, L: int) -> list:
    """One strength per layer: a scalar is shared by all ``L``; a sequence must have ``L`` entries."""
    if isinstance(lam_W, (list, tuple)) or isinstance(lam_W, np.ndarray) and lam_W.ndim == 1 or _validate.is_tensor(lam_W) and lam_W.ndim == 1:
        if len(lam_W) != L:
            raise ValueError(f"lam_W must be one strength for all layers or one per layer: L = {L} values; got {len(lam_W)}")
        return [v if type(v) is float and 0 <= v < math.inf else _strength(v, f"lam_W[{i}]") for i, v in enumerate(lam_W)]
    return [_strength(lam_W, "lam_W")] * L


def _last_dims(a: Any, name: str, want: tuple, what: Callable[[], str]) -> None:
    """Require the trailing dimensions of ``a`` to be ``want`` (None matches anything);
    ``what()`` describes the shape in the message (built only on failure)."""
    shape, k = a.shape, len(want)
    if len(shape) < k or any(w is not None and w != shape[j - k] for j, w in enumerate(want)):
        raise ValueError(f"{name} must have shape {what()}; got shape {tuple(shape)}")


def _sq(a: Any) -> Any:
    """Sum of squares of a matrix (or a batch of matrices) over its last two axes."""
    return (a**2).sum(axis=(-2, -1))


def _cross_entropy(logits: Any, Y: Any) -> Any:
    """Mean cross-entropy over samples; logits (..., K, N), one-hot Y (K, N)."""
    if isinstance(logits, np.ndarray):
        top = logits.max(axis=-2, keepdims=True)
        lse = top + np.log(np.exp(logits - top).sum(axis=-2, keepdims=True))
    else:
        lse = logits.logsumexp(dim=-2, keepdim=True)
    return ((lse - logits) * Y).sum(axis=-2).mean(axis=-1)


def ufm_objective(
    layers: Sequence[Any],
    H: Any,
    b: Any | None,
    Y: Any,
    lam_W: Sequence[Any],
    lam_H: Any,
    lam_b: Any = 0.0,
    loss: str = "mse",
) -> Any:
    """Value of (P) at a point (or a batch of points); numpy arrays and torch tensors alike.

    Parameters
    ----------
    layers : sequence of arrays
        ``[W_1, ..., W_L]``, shapes (..., d, d) ... (..., K, d).
    H : array, shape (..., d, N)
        Features, one column per sample.
    b : array, shape (..., K), or None
        Bias (None for the model without bias).
    Y : array, shape (K, N)
        One-hot labels (:func:`nclab.data.one_hot`).
    lam_W : float, or sequence of L strengths
        Weight decay (>= 0): one value for every layer, or one per layer (scalars, or arrays
        over the batch dimensions). A sequence of another length is refused.
    lam_H : float or array over the batch
        Feature decay (>= 0).
    lam_b : float or array over the batch, default 0
        Decay of the bias; 0 is the unregularised bias of Liu (2024).
    loss : {"mse", "ce"}
        ``"mse"``: ``(1/2N) ||W H + b 1^T - Y||_F^2`` as in (P); ``"ce"``: mean cross-entropy
        of the logits ``W H + b 1^T`` (for contrast; the closed form does not apply).

    Returns
    -------
    scalar or array over the batch (float / numpy array for numpy, tensor for torch)
    """
    loss = _validate.choice(loss, "loss", ("mse", "ce"))
    layers = _layers(layers)
    K, d = layers[-1].shape[-2], layers[0].shape[-1]
    H = _matrix(H, "H")
    _last_dims(H, "H", (d, None), lambda: f"(..., d, N) with d = {d} (the columns of layers[0])")
    N = H.shape[-1]
    Y = _matrix(Y, "Y")
    _last_dims(Y, "Y", (K, N), lambda: f"(K, N) = {(K, N)} (one-hot labels, one column per column of H)")
    if b is not None:
        b = _matrix(b, "b", 1)
        _last_dims(b, "b", (K,), lambda: f"(..., K) with K = {K}")
    lams = _layer_strengths(lam_W, len(layers))
    lam_H, lam_b = _strength(lam_H, "lam_H"), _strength(lam_b, "lam_b")
    return _finite_value(_ufm_objective(layers, H, b, Y, lams, lam_H, lam_b, loss))


def _ufm_objective(layers: list, H: Any, b: Any | None, Y: Any, lam_W: list, lam_H: Any, lam_b: Any, loss: str) -> Any:
    """:func:`ufm_objective` without its checks (``lam_W`` one strength per layer), for inner loops."""
    logits = _product(layers) @ H
    if b is not None:
        logits = logits + b[..., :, None]
    value = _sq(logits - Y) / (2 * H.shape[-1]) if loss == "mse" else _cross_entropy(logits, Y)
    value = value + lam_H / 2 * _sq(H)
    for lam, layer in zip(lam_W, layers):
        value = value + lam / 2 * _sq(layer)
    if b is not None:
        value = value + lam_b / 2 * (b**2).sum(axis=-1)
    return value


def _finite_value(value: Any) -> Any:
    """A numpy objective that overflowed is refused; a torch one is returned as it is (the
    trainer's line search rejects non-finite trial points itself)."""
    if not _validate.is_tensor(value) and not np.all(np.isfinite(value)):
        raise ValueError("the objective overflows float64 at this point: the layers, features or strengths (lam_W, lam_H) are too large")
    return value


def _is_numpy(a: Any) -> bool:
    return isinstance(a, np.ndarray)


def exact_features(layers: Sequence[Any], n: Any, lam_H: Any, *, bias: bool = True) -> tuple[Any, Any]:
    """Features and bias minimising (P) for fixed layers (MSE loss, unregularised bias).

    With ``W = W_L ... W_1`` and ``A = W^T W + N lam_H I``, the minimiser over ``H`` of (P) is
    ``H = A^{-1} W^T (Y - b 1^T)`` column by column, and over ``b`` it is ``b = n / N`` (the
    optimal features have zero mean): every sample of class ``k`` gets the same feature, so
    ``H = M Y`` with the class means

    * ``M = A^{-1} W^T (I - b 1^T)``, ``b = n / N`` with the bias,
    * ``M = A^{-1} W^T`` without it.

    This is the step "NC1 holds at every partial minimiser over H" in the proof of collapse
    (Zhu et al. 2021; Liu 2024, section 3), and the variable projection that
    :func:`nclab.train` uses by default.

    Parameters
    ----------
    layers : sequence of arrays
        ``[W_1, ..., W_L]``, shapes (..., d, d) ... (..., K, d); numpy or torch.
    n : array, shape (..., K)
        Class counts.
    lam_H : float or array over the batch dimensions
        Feature decay (> 0).
    bias : bool
        Model with an (unregularised) bias.

    Returns
    -------
    M : array, shape (..., d, K)
        Class means of the optimal features.
    b : array, shape (..., K), or None
        Optimal bias, ``n / N`` (None without bias).
    """
    layers, n, lam_H, bias = _layers_counts(layers, n, lam_H, bias)
    if not _validate.is_tensor(n) and not _validate.is_tensor(lam_H) and not np.all(np.isfinite(n.sum(-1) * lam_H)):
        raise ValueError(f"lam_H: N lam_H must be a finite float; got N = {np.max(n.sum(-1)):g}, lam_H = {np.max(lam_H):g}")
    return _exact_features(layers, n, lam_H, bias)


def _product_and_ridge(layers: list, n: Any, lam_H: Any) -> tuple[Any, Any, Any, Any]:
    """``W``, ``W^T``, ``N`` and the ridge ``N lam_H`` (shaped to add to a batch of matrices)."""
    W = _product(layers)
    WT = np.swapaxes(W, -1, -2) if _is_numpy(W) else W.transpose(-1, -2)
    N = n.sum(-1)
    ridge = N * lam_H
    if getattr(ridge, "ndim", 0):
        ridge = ridge[..., None, None]
    return W, WT, N, ridge


def _exact_features(layers: list, n: Any, lam_H: Any, bias: bool) -> tuple[Any, Any]:
    """:func:`exact_features` without its checks, for inner loops."""
    W, WT, N, ridge = _product_and_ridge(layers, n, lam_H)
    A = WT @ W + ridge * _eye(W.shape[-1], W)
    rhs, b = WT, None
    if bias:
        b = n / (N[..., None] if getattr(N, "ndim", 0) else N)
        rhs = WT - WT @ b[..., :, None]
    if _is_numpy(W):
        return np.linalg.solve(A, rhs), b
    import torch

    return torch.linalg.solve(A, rhs), b


def collapsed_objective(layers: Sequence[Any], M: Any, b: Any | None, n: Any, lam_W: Sequence[Any], lam_H: Any) -> Any:
    """Value of (P) at collapsed features ``H = M Y`` (MSE loss, unregularised bias).

    Equal to :func:`ufm_objective` at ``H = M Y`` but computed from the K class means:
    ``(1/2N) sum_k n_k ||W m_k + b - e_k||^2 + lam_H/2 sum_k n_k ||m_k||^2 + sum_l lam_l/2 ||W_l||^2``.

    Parameters
    ----------
    layers : sequence of arrays
        ``[W_1, ..., W_L]``, shapes (..., d, d) ... (..., K, d).
    M : array, shape (..., d, K)
        Class means.
    b : array, shape (..., K), or None
    n : array, shape (..., K)
        Class counts.
    lam_W : float, or sequence of L strengths (scalars or arrays over the batch)
        One value for every layer, or one per layer.
    lam_H : float or array over the batch

    Returns
    -------
    scalar or array over the batch
    """
    layers = _layers(layers)
    K, d = layers[-1].shape[-2], layers[0].shape[-1]
    M = _matrix(M, "M")
    _last_dims(M, "M", (d, K), lambda: f"(..., d, K) = (..., {d}, {K}) to match the layers")
    n = _matrix(n, "n", 1)
    _last_dims(n, "n", (K,), lambda: f"(..., K) with K = {K}")
    if b is not None:
        b = _matrix(b, "b", 1)
        _last_dims(b, "b", (K,), lambda: f"(..., K) with K = {K}")
    lams = _layer_strengths(lam_W, len(layers))
    lam_H = _strength(lam_H, "lam_H")
    return _finite_value(_collapsed_objective(layers, M, b, n, lams, lam_H))


def _collapsed_objective(layers: list, M: Any, b: Any | None, n: Any, lam_W: list, lam_H: Any) -> Any:
    """:func:`collapsed_objective` without its checks (``lam_W`` one strength per layer), for inner loops."""
    K = M.shape[-1]
    logits = _product(layers) @ M
    if b is not None:
        logits = logits + b[..., :, None]
    value = ((logits - _eye(K, M)) ** 2 * n[..., None, :]).sum(axis=(-2, -1)) / (2 * n.sum(-1))
    value = value + lam_H / 2 * ((M**2) * n[..., None, :]).sum(axis=(-2, -1))
    for lam, layer in zip(lam_W, layers):
        value = value + lam / 2 * _sq(layer)
    return value


def _eye(k: int, like: Any) -> Any:
    """Identity of size k, numpy or torch (with the dtype and device of ``like``)."""
    if _is_numpy(like):
        return np.eye(k)
    import torch

    return torch.eye(k, dtype=like.dtype, device=like.device)


def projected_objective(layers: Sequence[Any], n: Any, lam_W: Sequence[Any], lam_H: Any, *, bias: bool = True) -> Any:
    """(P) minimised over the features and the bias, for fixed layers (MSE loss, unregularised bias).

    For each sample of class ``k``, ``min_h (1/2N) ||W h + b - e_k||^2 + lam_H/2 ||h||^2`` is a
    ridge regression with value ``(lam_H/2) t^T (W W^T + N lam_H I)^{-1} t``, ``t = e_k - b``;
    summed over the samples and minimised over ``b`` (at ``b = n / N``, as in
    :func:`exact_features`) this gives

    .. math::

        \\min_{H, b} f = \\frac{\\lambda_H}{2} \\operatorname{tr}\\big(C\\,(W W^\\top + N\\lambda_H I_K)^{-1}\\big)
                        + \\sum_l \\frac{\\lambda_{W_l}}{2} \\lVert W_l \\rVert_F^2,

    with ``C = diag(n) - n n^T / N`` with the bias and ``C = diag(n)`` without it. It equals
    :func:`collapsed_objective` at :func:`exact_features`, but needs only the K x K Gram matrix
    ``W W^T`` and one Cholesky factorisation, and no class means: the variable projection of
    :func:`nclab.train` (Golub & Pereyra 1973) evaluates it, and its gradient is that of
    ``min_{H, b} f`` (envelope theorem).

    Parameters
    ----------
    layers : sequence of arrays
        ``[W_1, ..., W_L]``, shapes (..., r, r) ... (..., K, r); numpy or torch. Any width r
        (the value depends on the layers only through ``W W^T`` and their norms).
    n : array, shape (..., K)
        Class counts.
    lam_W : sequence of L strengths (scalars or arrays over the batch)
    lam_H : float or array over the batch
        Feature decay (> 0).
    bias : bool
        Model with an (unregularised) bias.

    Returns
    -------
    scalar or array over the batch
    """
    return _finite_value(_projected_objective(*_projected_args(layers, n, lam_W, lam_H, bias)))


def _layers_counts(layers: Any, n: Any, lam_H: Any, bias: Any) -> tuple[list, Any, Any, bool]:
    """Layers, counts (one per row of ``W_L``, > 0), ``lam_H > 0`` and ``bias`` checked, as
    :func:`exact_features` and :func:`projected_objective` take them."""
    bias = _validate.boolean(bias, "bias")
    layers = _layers(layers)
    K = layers[-1].shape[-2]
    n = _matrix(n, "n", 1)
    _last_dims(n, "n", (K,), lambda: f"(..., K) with K = {K} (one count per row of W_L)")
    if not _validate.is_tensor(n) and np.any(n <= 0):
        raise ValueError(f"n must hold class counts > 0; got minimum {n.min():g}")
    return layers, n, _strength(lam_H, "lam_H", strict=True), bias


def _projected_args(layers: Any, n: Any, lam_W: Any, lam_H: Any, bias: Any) -> tuple[list, Any, list, Any, bool]:
    """The arguments of :func:`projected_objective` checked (``lam_W`` one strength per layer)."""
    layers, n, lam_H, bias = _layers_counts(layers, n, lam_H, bias)
    return layers, n, _layer_strengths(lam_W, len(layers)), lam_H, bias


def _projected_objective(layers: list, n: Any, lam_W: list, lam_H: Any, bias: bool) -> Any:
    """:func:`projected_objective` without its checks, for inner loops."""
    W = _product(layers)
    if not _is_numpy(W):
        n = n.to(dtype=W.dtype, device=W.device)
    W, WT, _, ridge = _product_and_ridge([W], n, lam_H)
    A = W @ WT + ridge * _eye(W.shape[-2], W)
    C = _projection_target(n, bias)
    if _is_numpy(W):
        value = lam_H / 2 * np.trace(np.linalg.solve(A, C), axis1=-2, axis2=-1)
    else:
        import torch

        # A is positive definite (eigenvalues >= N lam_H); a point with inf or nan entries is
        # not, and gets the value nan (which a line search rejects) instead of an exception
        chol, info = torch.linalg.cholesky_ex(A)
        X = torch.cholesky_solve(C.expand_as(A), chol)
        value = lam_H / 2 * X.diagonal(0, -2, -1).sum(-1)
        value = torch.where(info == 0, value, torch.full_like(value, float("nan")))
    for lam, layer in zip(lam_W, layers):
        value = value + lam / 2 * _sq(layer)
    return value


def _projection_target(n: Any, bias: bool = True) -> Any:
    """``C`` of :func:`projected_objective`: ``diag(n) - n n^T / N`` with the bias, ``diag(n)`` without; shape (..., K, K)."""
    K = n.shape[-1]
    C = n[..., :, None] * _eye(K, n)
    if bias:
        N = n.sum(-1)
        C = C - n[..., :, None] * n[..., None, :] / (N[..., None, None] if getattr(N, "ndim", 0) else N)
    return C


def _projected_fit(layers: Sequence[Any], C: Any, ridge: Any, lam_H: Any) -> tuple[Any, list[Any]]:
    """The data and feature terms of :func:`projected_objective`, ``(lam_H/2) tr(C (W W^T + ridge I)^{-1})``, and their
    gradient with respect to every layer (torch tensors, batched; the weight decay is left to the caller).

    With ``G = W W^T + ridge I`` the gradient with respect to the product is
    ``-lam_H G^{-1} C G^{-1} W`` and, by the chain rule through ``W = W_L ... W_1``,
    ``(W_L ... W_{l+1})^T (that) (W_{l-1} ... W_1)^T`` with respect to ``W_l``.

    Parameters
    ----------
    layers : sequence of torch.Tensor
        ``[W_1, ..., W_L]``, shapes (..., r, r) ... (..., K, r).
    C : torch.Tensor, shape (..., K, K) or (K, K)
        :func:`_projection_target`.
    ridge : float or torch.Tensor of shape (..., 1, 1)
        ``N lam_H``.
    lam_H : float or torch.Tensor of shape (..., 1, 1)

    Returns
    -------
    value : torch.Tensor, shape (...)
        nan where ``G`` is not positive definite (a point with non-finite entries).
    grads : list of L torch.Tensor, shaped like ``layers``
    """
    import torch

    prefix = [layers[0]]  # W_l ... W_1
    for layer in layers[1:]:
        prefix.append(layer @ prefix[-1])
    W = prefix[-1]
    K = W.shape[-2]
    G = torch.baddbmm(ridge * torch.eye(K, dtype=W.dtype, device=W.device), W, W.transpose(-1, -2)) if W.ndim == 3 else W @ W.T + ridge * torch.eye(K, dtype=W.dtype, device=W.device)
    chol, info = torch.linalg.cholesky_ex(G)
    XY = torch.cholesky_solve(torch.cat([C.expand(*W.shape[:-1], K), W], dim=-1), chol)
    X, Y = XY[..., :K], XY[..., K:]  # G^{-1} C and G^{-1} W
    value = X.diagonal(0, -2, -1).sum(-1)
    value = torch.where(info == 0, value, torch.nan) * (lam_H / 2 if not torch.is_tensor(lam_H) else lam_H.reshape(value.shape) / 2)
    back = (X @ Y) * -lam_H
    grads = [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        grads[l] = back @ prefix[l - 1].transpose(-1, -2) if l > 0 else back
        if l > 0:
            back = layers[l].transpose(-1, -2) @ back
    return value, grads


def projected_value_and_grad(layers: Sequence[Any], n: Any, lam_W: Sequence[Any], lam_H: Any, *, bias: bool = True) -> tuple[Any, list[Any]]:
    """:func:`projected_objective` and its gradient with respect to every layer (torch tensors, batched).

    With ``G = W W^T + N lam_H I`` and ``C`` as in :func:`projected_objective`, the gradient
    with respect to the product is ``-lam_H G^{-1} C G^{-1} W`` and, by the chain rule through
    ``W = W_L ... W_1``,

    .. math::

        \\nabla_{W_l} f = (W_L \\cdots W_{l+1})^\\top \\nabla_W f \\, (W_{l-1} \\cdots W_1)^\\top + \\lambda_{W_l} W_l .

    Written by hand (:func:`_projected_fit`) because autograd needs about three times as many
    tensor operations, and on the book's small problems the cost of an operation is its
    overhead, not its arithmetic (the tests check this gradient against autograd).

    Parameters
    ----------
    layers : sequence of torch.Tensor
        ``[W_1, ..., W_L]``, shapes (..., r, r) ... (..., K, r).
    n, lam_W, lam_H, bias
        As in :func:`projected_objective`.

    Returns
    -------
    value : torch.Tensor, shape (...)
        nan where ``W W^T + N lam_H I`` is not positive definite (a point with non-finite entries).
    grads : list of L torch.Tensor
        Shaped like ``layers``.
    """
    import torch

    layers, n, lam_W, lam_H, bias = _projected_args(layers, n, lam_W, lam_H, bias)
    expand = lambda v: v[..., None, None] if torch.is_tensor(v) and v.ndim else v  # noqa: E731
    n = torch.as_tensor(n, dtype=layers[-1].dtype, device=layers[-1].device)
    value, grads = _projected_fit(layers, _projection_target(n, bias), expand(n.sum(-1) * lam_H), expand(lam_H))
    for l, layer in enumerate(layers):
        value = value + lam_W[l] / 2 * _sq(layer)
        grads[l] = grads[l] + expand(lam_W[l]) * layer
    return value, grads
