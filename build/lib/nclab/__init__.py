"""nclab: neural collapse under imbalanced data.

The companion package of the book *Neural collapse under imbalance*. Modules, one concept
each:

* :mod:`nclab.data` -- class-count profiles and label matrices;
* :mod:`nclab.objective` -- the objective (P) of the L-layer unconstrained feature model;
* :mod:`nclab.theory` -- its closed-form global minimiser (Liu 2024), pure numpy;
* :mod:`nclab.lbfgs` -- a batched L-BFGS minimiser in PyTorch;
* :mod:`nclab.ufm` -- training the model on CPU or GPU (:func:`nclab.train`);
* :mod:`nclab.metrics` -- NC1-NC4 and distances to the theory;
* :mod:`nclab.phases` -- phase diagrams over (imbalance ratio, strength), theory and training;
* :mod:`nclab.plots` -- the book's matplotlib figures;
* :mod:`nclab.widgets` -- ipywidgets explorers;
* :mod:`nclab.nets` -- a real network on real data (scikit-learn's digits) and user features;
* :mod:`nclab.exercises` and :mod:`nclab.assign` -- checkers and student editions for courses.

The last six load on first use (``nclab.plots`` works after ``import nclab``).
"""

import importlib

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


_LAZY = ("phases", "plots", "widgets", "nets", "exercises", "assign")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "data",
    "metrics",
    "objective",
    "theory",
    "ufm",
    "phases",
    "plots",
    "widgets",
    "nets",
    "exercises",
    "assign",
    "global_minimizer",
    "train",
    "TrainResult",
    "TrainingDivergedError",
    "seed_everything",
    "__version__",
]
