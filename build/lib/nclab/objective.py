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
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["product", "ufm_objective", "collapsed_objective", "exact_features"]


def product(layers: Sequence[Any]) -> Any:
    """Product classifier ``W = W_L ... W_1`` of the layers ``[W_1, ..., W_L]``.

    Parameters
    ----------
    layers : sequence of arrays
        ``W_1..W_{L-1}`` of shape (..., d, d) and ``W_L`` of shape (..., K, d).

    Returns
    -------
    array, shape (..., K, d)
    """
    W = layers[0]
    for layer in layers[1:]:
        W = layer @ W
    return W


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
    lam_W : sequence of L strengths
        Weight decay of each layer (scalars, or arrays over the batch dimensions).
    lam_H : float or array over the batch
        Feature decay.
    lam_b : float or array over the batch, default 0
        Decay of the bias; 0 is the unregularised bias of Liu (2024).
    loss : {"mse", "ce"}
        ``"mse"``: ``(1/2N) ||W H + b 1^T - Y||_F^2`` as in (P); ``"ce"``: mean cross-entropy
        of the logits ``W H + b 1^T`` (for contrast; the closed form does not apply).

    Returns
    -------
    scalar or array over the batch (float / numpy array for numpy, tensor for torch)
    """
    N = H.shape[-1]
    logits = product(layers) @ H
    if b is not None:
        logits = logits + b[..., :, None]
    if loss == "mse":
        value = _sq(logits - Y) / (2 * N)
    elif loss == "ce":
        value = _cross_entropy(logits, Y)
    else:
        raise ValueError(f"loss must be 'mse' or 'ce'; got {loss!r}")
    value = value + lam_H / 2 * _sq(H)
    for lam, layer in zip(lam_W, layers):
        value = value + lam / 2 * _sq(layer)
    if b is not None:
        value = value + lam_b / 2 * (b**2).sum(axis=-1)
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
    W = product(layers)
    WT = np.swapaxes(W, -1, -2) if _is_numpy(W) else W.transpose(-1, -2)
    N = n.sum(-1)
    ridge = N * lam_H
    if getattr(ridge, "ndim", 0):
        ridge = ridge[..., None, None]
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
    lam_W : sequence of L strengths (scalars or arrays over the batch)
    lam_H : float or array over the batch

    Returns
    -------
    scalar or array over the batch
    """
    K = M.shape[-1]
    logits = product(layers) @ M
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
