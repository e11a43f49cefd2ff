"""Repository-wide pytest set-up (unit tests in tests/, notebooks in book/ through nbval).

Settings and the nbval sanitize file come from pyproject.toml and nbval_sanitize.cfg.
"""

import os


def pytest_configure(config):
    # Kernels that nbval starts inherit this process's environment.
    # * Hash seed fixed, so a notebook whose output depends on set/dict order of strings fails
    #   every time rather than now and then.
    os.environ["PYTHONHASHSEED"] = "0"
    # * No MPLBACKEND: ipykernel then selects the inline backend, which produces the figure
    #   outputs stored in the notebooks. MPLBACKEND=Agg here would reach the kernels, turn
    #   plt.show() into a warning and drop every figure.
    os.environ.pop("MPLBACKEND", None)
    # Unit tests in this process draw off-screen, with no window.
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
