"""The objective (P) of the L-layer unconstrained feature model, for numpy or torch arrays.

.. math::

    f = \\frac{1}{2N}\\lVert W_L\\cdots W_1 H + b\\,\\mathbf 1^\\top - Y\\rVert_F^2
        + \\sum_l \\frac{\\lambda_{W_l}}{2}\\lVert W_l\\rVert_F^2
        + \\frac{\\lambda_H}{2}\\lVert H\\rVert_F^2 \\; (+ \\tfrac{\\lambda_b}{2}\\lVert b\\rVert^2)

This is the normalisation of Dang et al. (ICML 2023) used throughout the book; Liu (2024)
studies it with an unregularised bias. The same function evaluates a numpy point (tests,
closed-form constructions) and a torch point (the trainer differentiates through it).
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["product", "ufm_objective"]


def product(layers: Sequence[Any]) -> Any:
    """Product classifier ``W = W_L ... W_1`` of the layers ``[W_1, ..., W_L]``.

    Parameters
    ----------
    layers : sequence of arrays
        ``W_1..W_{L-1}`` of shape (d, d) and ``W_L`` of shape (K, d).

    Returns
    -------
    array, shape (K, d)
    """
    W = layers[0]
    for layer in layers[1:]:
        W = layer @ W
    return W


def ufm_objective(
    layers: Sequence[Any],
    H: Any,
    b: Any | None,
    Y: Any,
    lam_W: Sequence[float],
    lam_H: float,
    lam_b: float = 0.0,
) -> Any:
    """Value of (P) at a point; works for numpy arrays and torch tensors alike.

    Parameters
    ----------
    layers : sequence of arrays
        ``[W_1, ..., W_L]``, shapes (d, d) ... (K, d).
    H : array, shape (d, N)
        Features, one column per sample.
    b : array, shape (K,), or None
        Bias (None for the model without bias).
    Y : array, shape (K, N)
        One-hot labels (:func:`nclab.data.one_hot`).
    lam_W : sequence of L floats
        Weight decay of each layer.
    lam_H : float
        Feature decay.
    lam_b : float, default 0
        Decay of the bias; 0 is the unregularised bias of Liu (2024).

    Returns
    -------
    scalar (float for numpy, 0-d tensor for torch)
    """
    N = H.shape[1]
    logits = product(layers) @ H
    if b is not None:
        logits = logits + b[:, None]
    value = ((logits - Y) ** 2).sum() / (2 * N) + lam_H / 2 * (H**2).sum()
    for lam, layer in zip(lam_W, layers):
        value = value + lam / 2 * (layer**2).sum()
    if b is not None and lam_b:
        value = value + lam_b / 2 * (b**2).sum()
    return value
