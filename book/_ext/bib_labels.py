"""Label the bibliography's entries the way the chapters cite them.

The chapters cite in author-year form (``bibtex_reference_style: author_year``): "Liu [2024]",
"[Papyan et al., 2020]". pybtex's formatting styles label the entries of the bibliography
page with numbers ("[6]") or alphabetic keys ("[Liu24]"), which match nothing in the text, so
a reader cannot look a citation up by its label. This extension registers a pybtex
formatting style ``authoryear``: pybtex's ``plain`` style (entries sorted by author, year and
title) whose labels read like the citations, "Liu, 2024", "Hong and Ling, 2023",
"Papyan et al., 2020". Entries that would share a label get "a", "b", ... after the year.
Select it with ``bibtex_default_style: authoryear``.

pybtex and sphinxcontrib-bibtex provide no such label style (their author-year support covers
the citations in the text, not the labels of the list), hence these few lines.
"""

from __future__ import annotations

from collections import Counter
from string import ascii_lowercase

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

STYLE = "authoryear"


def _surname(person) -> str:
    """"van der Berg" for von parts and last names; braces of protected names removed."""
    return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")


def author_year(entry) -> str:
    """``"Liu, 2024"``, ``"Hong and Ling, 2023"`` or ``"Papyan et al., 2020"`` for an entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Labels that repeat the author-year citation, disambiguated by a letter if needed."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(entry) for entry in entries]
        repeated = Counter(labels)
        used: Counter = Counter()
        for label in labels:
            if repeated[label] > 1:
                suffix = ascii_lowercase[used[label]]
                used[label] += 1
                label += suffix
            yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` style with :class:`AuthorYearLabels`."""

    default_label_style = STYLE


def setup(app) -> dict:
    register_plugin("pybtex.style.labels", STYLE, AuthorYearLabels)
    register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
