"""nclab: neural collapse under imbalanced data.

The companion package of the book *Neural collapse under imbalance*. Modules, one concept
each:

* :mod:`nclab.data` -- class-count profiles and label matrices;
* :mod:`nclab.objective` -- the objective (P) of the L-layer unconstrained feature model;
* :mod:`nclab.theory` -- its closed-form global minimiser (Liu 2024), pure numpy;
* :mod:`nclab.lbfgs` -- a batched L-BFGS minimiser in PyTorch;
* :mod:`nclab.ufm` -- training the model on CPU or GPU (:func:`nclab.train`);
* :mod:`nclab.metrics` -- NC1-NC4 and distances to the theory.
"""

from . import data, metrics, objective, theory, ufm
from .theory import global_minimizer
from .ufm import TrainingDivergedError, TrainResult, train


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and torch, so a notebook's random numbers repeat run after run."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


__version__ = "0.1.0"

__all__ = [
    "data",
    "metrics",
    "objective",
    "theory",
    "ufm",
    "global_minimizer",
    "train",
    "TrainResult",
    "TrainingDivergedError",
    "seed_everything",
    "__version__",
]
