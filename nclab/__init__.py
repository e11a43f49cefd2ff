"""nclab: neural collapse under imbalanced data.

The companion package of the book *Neural collapse under imbalance*. Modules, one concept
each:

* :mod:`nclab.data` -- class-count profiles and label matrices;
* :mod:`nclab.objective` -- the objective (P) of the L-layer unconstrained feature model;
* :mod:`nclab.theory` -- its closed-form global minimiser (Liu 2024), pure numpy.
"""

from . import data, objective, theory
from .theory import global_minimizer

__version__ = "0.1.0"

__all__ = ["data", "objective", "theory", "global_minimizer", "__version__"]
