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
* :mod:`nclab.analysis` -- collapse analysis of any torch model on a dataset (forward hook,
  streamed statistics) against the UFM with and without bias;
* :mod:`nclab.longtail` -- long-tailed CIFAR-10/100, MNIST and Fashion-MNIST;
* :mod:`nclab.checks` -- the chapters' checks that explain themselves (claims and regimes);
* :mod:`nclab.exercises` and :mod:`nclab.assign` -- subject-aware feedback on students' answers
  and the otter-grader workflow for courses.

The light core -- ``import nclab``, :mod:`~nclab.data`, :mod:`~nclab.theory`,
:mod:`~nclab.metrics` (for numpy input), :mod:`~nclab.phases` maps and :mod:`~nclab.plots` --
needs numpy, scipy and matplotlib only. Everything else loads on first use (``nclab.train``,
``nclab.ufm``, ``nclab.nets``, ...); what needs an optional package says which extra to
install (``pip install "nclab[train]"`` for PyTorch).
"""

import importlib
import importlib.util
from types import ModuleType
from typing import Any

from . import _validate, data, metrics, theory
from .theory import global_minimizer

__version__ = "0.1.0"

#: Modules loaded on first use, with the extra that provides what they import.
_LAZY_MODULES = {
    "objective": None,
    "ufm": "train",
    "lbfgs": "train",
    "phases": None,
    "plots": None,
    "widgets": "widgets",
    "nets": "nets",
    "analysis": "train",
    "longtail": "train",
    "exercises": None,
    "checks": None,
    "assign": "assign",
}
#: Names re-exported from a lazy module.
_LAZY_NAMES = {"train": "ufm", "TrainResult": "ufm", "TrainingDivergedError": "ufm"}
#: Optional top-level packages and the extra of ``pyproject.toml`` that installs each.
_EXTRA_OF_PACKAGE = {
    "torch": "train",
    "tqdm": "train",
    "ipywidgets": "widgets",
    "IPython": "widgets",
    "sklearn": "nets",
    "nbformat": "assign",
    "nbclient": "assign",
}
_PACKAGES_OF_EXTRA = {"train": {"torch", "tqdm"}, "nets": {"torch", "tqdm", "sklearn"}, "widgets": {"ipywidgets", "IPython"}, "assign": {"nbformat", "nbclient"}}


def _load(module: str) -> ModuleType:
    """Import ``nclab.<module>``; a missing optional package becomes an ImportError naming the extra."""
    try:
        return importlib.import_module(f".{module}", __name__)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing == __name__:
            raise
        own = _LAZY_MODULES.get(module)
        extra = own if own and missing in _PACKAGES_OF_EXTRA.get(own, ()) else _EXTRA_OF_PACKAGE.get(missing, "all")
        raise ImportError(f'nclab.{module} needs the package {missing!r}, which is not installed: pip install "nclab[{extra}]"') from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return _load(name)
    if name in _LAZY_NAMES:
        return getattr(_load(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, numpy's global generator and (when installed) torch.

    So a notebook's random numbers repeat run after run. The seed is checked before anything
    is reseeded.

    Parameters
    ----------
    seed : int, default 0
        A whole number in ``[0, 2**32 - 1]`` (numpy's legacy seeding accepts no more).
    """
    import random

    import numpy as np

    seed = _validate.seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)


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
    "analysis",
    "longtail",
    "exercises",
    "assign",
    "global_minimizer",
    "train",
    "TrainResult",
    "TrainingDivergedError",
    "seed_everything",
    "__version__",
]
