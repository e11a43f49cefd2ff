"""A summary table of a module's public names, read from its ``__all__``.

The API reference (``book/api/``) has one page per module of :mod:`nclab`; each documents the
module with ``automodule`` (``:members:`` follows the module's ``__all__``) and opens with a
table of those members. Sphinx's ``autosummary`` makes that table, but it wants the names
written out, and a hand-kept list drifts from ``__all__``. The directive ``module-summary``
is ``autosummary`` with its names taken from the ``__all__`` of the current module (the one
set by the enclosing ``automodule``), or of the module given as its argument::

    .. automodule:: nclab.theory
       :members:

       .. module-summary::

So the table and the members below it always list the same names.

Each row's text is the first paragraph of the docstring, the numpydoc summary. Autosummary's
own guess, the first sentence, ends at the first period followed by a space, which cuts a
summary such as "Product classifier ``W = W_L ... W_1``" inside its inline literal.
"""

from __future__ import annotations

import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.ext.autosummary import Autosummary, import_by_name


class ModuleSummary(Autosummary):
    """``autosummary`` of every name in a module's ``__all__``, in that order."""

    required_arguments = 0
    optional_arguments = 1
    has_content = False
    option_spec = {**Autosummary.option_spec}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0] if self.arguments else self.env.ref_context.get("py:module")
        if not name:
            raise self.error("module-summary: no module given and no current module (use it inside automodule)")
        module = importlib.import_module(name)
        public = getattr(module, "__all__", None)
        if not public:
            raise self.error(f"module-summary: {name} has no __all__ to list")
        prefix = "" if name == self.env.ref_context.get("py:module") else f"{name}."
        self.content = StringList([prefix + item for item in public], source=f"__all__ of {name}")
        self.options.setdefault("nosignatures", True)
        return super().run()

    def get_items(self, names: list[str]) -> list[tuple[str, str, str, str]]:
        items = super().get_items(names)
        return [(display, sig, _summary(real) or summary, real) for display, sig, summary, real in items]


def _summary(name: str) -> str:
    """The first paragraph of the docstring of ``name``, on one line ("" without a docstring)."""
    obj = import_by_name(name)[1]
    doc = inspect.getdoc(obj) or ""
    if inspect.getdoc(type(obj)) == doc:  # data without its own docstring: its type's says nothing
        return ""
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def setup(app) -> dict:
    app.setup_extension("sphinx.ext.autosummary")
    app.add_directive("module-summary", ModuleSummary)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
