"""The bibliography's labels repeat the author-year citations (book/_ext/bib_labels.py)."""

import importlib.util
from pathlib import Path

from pybtex.database import parse_file, parse_string
from pybtex.plugin import find_plugin

ROOT = Path(__file__).resolve().parents[1]


def _load_extension():
    spec = importlib.util.spec_from_file_location("bib_labels", ROOT / "book" / "_ext" / "bib_labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.setup(None)
    return module


bib_labels = _load_extension()


def _labels(bib_data):
    style = find_plugin("pybtex.style.formatting", bib_labels.STYLE)()
    return {entry.key: entry.label for entry in style.format_bibliography(bib_data)}


def test_the_book_references_get_author_year_labels():
    labels = _labels(parse_file(str(ROOT / "book" / "references.bib")))
    assert labels["liu2024exploration"] == "Liu, 2024"
    assert labels["hong2023neural"] == "Hong and Ling, 2023"
    assert labels["papyan2020prevalence"] == "Papyan et al., 2020"
    assert labels["dang2023neural"] == "Dang et al., 2023"
    assert len(set(labels.values())) == len(labels)


def test_equal_labels_get_letters_and_von_parts_stay():
    bib = parse_string(
        """
        @misc{a, author = {Smith, Ann}, title = {First}, year = {2020}}
        @misc{b, author = {Smith, Bob}, title = {Second}, year = {2020}}
        @misc{c, author = {van der Berg, Cor}, title = {Third}, year = {2021}}
        @misc{d, title = {No Author}, year = {2019}}
        """,
        "bibtex",
    )
    labels = _labels(bib)
    assert sorted([labels["a"], labels["b"]]) == ["Smith, 2020a", "Smith, 2020b"]
    assert labels["c"] == "van der Berg, 2021"
    assert labels["d"] == "No Author, 2019"
