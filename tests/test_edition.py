"""The Jupyter edition (tools/jupyter_edition.py) and the launch buttons that open it.

Unit tests run the converter on a small book made here; the rest check the real book: the
committed edition is up to date, its numbers agree with the built HTML, and the built pages'
Colab, Binder and download buttons open the edition (those skip without ``_build/html``).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import jupyter_edition as je  # noqa: E402

HTML = ROOT / "_build" / "html"

CONFIG = {
    "title": "Tiny book",
    "repository": {"url": "https://github.com/org/repo", "branch": "main"},
    "html": {"baseurl": "https://org.github.io/repo/"},
    "bibtex_bibfiles": ["book/refs.bib"],
    "sphinx": {"config": {"mathjax3_config": {"tex": {"macros": {
        "R": "\\mathbb{R}", "one": "\\mathbf{1}", "Yhat": "\\hat{Y}",
        "norm": ["\\left\\lVert #1 \\right\\rVert", 1], "half": "\\tfrac12\\one",
    }}}}},
}
TOC = {"format": "jb-book", "root": "book/intro", "parts": [
    {"caption": "Chapters", "numbered": True,
     "chapters": [{"file": "book/first"}, {"file": "book/second"}]},
    {"caption": "More", "chapters": [{"file": "book/extra"}, {"file": "book/glossary"}]},
]}
BIB = """
@article{smith2020, author = {Smith, Ann}, title = {One}, journal = {J}, year = {2020}}
@article{jones2021, author = {Jones, Bo and Lee, Cy and Kim, Di}, title = {Two}, journal = {J}, year = {2021}}
"""
GLOSSARY = "# Glossary\n\n```{glossary}\nsimplex ETF\n  A frame.\n```\n"


def _nb(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(nbformat.v4.new_markdown_cell(cell))
        else:
            nb.cells.append(cell)
    return nb


def _code(source: str, text: str = "", tags=()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    if text:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return cell


def _book(tmp_path: Path, first: nbformat.NotebookNode, second: nbformat.NotebookNode | None = None) -> je.Book:
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(TOC))
    (tmp_path / "book" / "refs.bib").write_text(BIB)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nText.\n")
    (tmp_path / "book" / "glossary.md").write_text(GLOSSARY)
    (tmp_path / "book" / "extra.md").write_text("# Extra\n\n```{prf:theorem} Loose\n:label: thm-extra\nx\n```\n")
    nbformat.write(first, tmp_path / "book" / "first.ipynb")
    nbformat.write(second or _nb("# Second\n\n(sec-two)=\n## Part two\n\n"
                                 "```{prf:theorem} Far\n:label: thm-far\nBody.\n```\n\n"
                                 "$$\na = b\n$$ (eq-far)\n"), tmp_path / "book" / "second.ipynb")
    return je.Book.load(tmp_path)


def _convert(tmp_path: Path, *cells) -> list[str]:
    book = _book(tmp_path, _nb(*cells))
    nb = book.convert(nbformat.read(tmp_path / "book" / "first.ipynb", as_version=4), "book/first.ipynb")
    return [c.source if c.cell_type == "markdown" else c for c in nb.cells]


# --- math ---------------------------------------------------------------------------------------

MACROS = {"R": ("\\mathbb{R}", 0), "one": ("\\mathbf{1}", 0), "half": ("\\tfrac12\\one", 0),
          "norm": ("\\left\\lVert #1 \\right\\rVert", 1)}


@pytest.mark.parametrize("tex, expected", [
    ("x \\in \\R^K", "x \\in \\mathbb{R}^K"),
    ("\\Rightarrow \\Re", "\\Rightarrow \\Re"),  # longer names are other macros
    ("\\norm{W H - Y}_F^2", "\\left\\lVert W H - Y \\right\\rVert_F^2"),
    ("\\norm H_F", "\\left\\lVert H \\right\\rVert_F"),  # a one-token argument, as TeX reads it
    ("\\norm{\\norm{x}}", "\\left\\lVert \\left\\lVert x \\right\\rVert \\right\\rVert"),
    ("\\norm{a_{\\{i\\}}}", "\\left\\lVert a_{\\{i\\}} \\right\\rVert"),
    ("\\half", "\\tfrac12\\mathbf{1}"),  # a macro whose body uses a macro
    ("\\\\R", "\\\\R"),  # a line break followed by the letter R is not the macro
])
def test_expand_macros_as_mathjax_would(tex, expected):
    assert je.expand_macros(tex, MACROS) == expected


def test_expand_macros_refuses_a_missing_argument():
    with pytest.raises(ValueError, match="argument missing"):
        je.expand_macros("x + \\norm", MACROS)


# --- conversion ---------------------------------------------------------------------------------

def test_theorems_proofs_and_references_render_with_the_books_numbers(tmp_path):
    out = _convert(
        tmp_path,
        "# First\n\nIntro citing {cite:t}`smith2020` and {cite:p}`jones2021,smith2020`.",
        "```{prf:theorem} Main $\\Yhat$\n:label: thm-main\n\nFor $x \\in \\R$, $\\norm{x} \\ge 0$.\n```\n\n"
        "```{prf:proof}\nObvious.\n```\n\n"
        "```{prf:proposition} Side\n:label: prop-side\nAlso.\n```\n\n"
        "```{prf:theorem}\nUnlabelled.\n```\n\n"
        "See {prf:ref}`thm-main`, {prf:ref}`thm-far`, {ref}`sec-two`, {eq}`eq-far`, "
        "{doc}`second`, {term}`simplex ETF` and {ref}`the extra one <thm-extra>`.",
    )
    first, body = out[0], out[1]
    assert first.startswith("# First\n\n*The Jupyter edition of a page of [Tiny book](https://org.github.io/repo/)")
    assert "Intro citing Smith [2020] and [Jones et al., 2021, Smith, 2020]." in first
    assert "**Theorem 1.1** (Main $\\hat{Y}$)\n\nFor $x \\in \\mathbb{R}$, $\\left\\lVert x \\right\\rVert \\ge 0$." in body
    assert "**Proof.** Obvious.\n\n∎" in body
    assert "**Proposition 1.1** (Side)" in body and "**Theorem 1.2**" in body
    assert ("See Theorem 1.1, [Theorem 2.1](https://org.github.io/repo/book/second.html#thm-far), "
            "[Part two](https://org.github.io/repo/book/second.html#sec-two), "
            "[(2.1)](https://org.github.io/repo/book/second.html#eq-far), "
            "[Second](https://org.github.io/repo/book/second.html), "
            "[simplex ETF](https://org.github.io/repo/book/glossary.html#term-simplex-ETF) and "
            "[the extra one](https://org.github.io/repo/book/extra.html#thm-extra).") in body
    references = out[-1]
    assert references.startswith("## References\n\n- Jones et al. [2021]: ")
    assert "\n- Smith [2020]: Ann Smith" in references


def test_labelled_equations_get_their_number_as_a_tag(tmp_path):
    out = _convert(tmp_path, "# First\n\n$$\n\\R = \\R\n$$ (eq-one)\n\nand\n\n"
                   "```{math}\n:label: eq-two\ny\n```\n\nby {eq}`eq-two`.")
    assert "$$\n\\mathbb{R} = \\mathbb{R} \\tag{1.1}\n$$" in out[0]
    assert "$$\ny \\tag{1.2}\n$$" in out[0] and "by (1.2)." in out[0]


def test_a_solution_over_several_cells_is_collapsed(tmp_path):
    out = _convert(
        tmp_path,
        "# First",
        "```{exercise} Try\n:label: ex-try\nDo it.\n```\n\n```{solution-start} ex-try\n:class: dropdown\n```\n\nDone so.",
        _code("print(1)", "1\n"),
        "More of the solution.",
        _code("print(2)", "2\n"),
        "```{solution-end}\n```",
        _code("print(3)", "3\n"),
        "```{exercise}\n:label: ex-two\nAgain.\n```\n\n```{solution} ex-two\nShort.\n```",
    )
    assert out[1].startswith("**Exercise 1.1** (Try)\n\nDo it.\n\n<details>\n"
                             "<summary><b>Solution to Exercise 1.1 (Try)</b></summary>\n\nDone so.\n\n</details>")
    assert out[2].metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert out[2].outputs[0].text == "1\n"  # outputs are kept, only collapsed
    assert out[3].startswith("<details>\n<summary><b>Solution to Exercise 1.1 (Try) (continued)</b>")
    assert out[4].metadata["jupyter"]["source_hidden"]
    assert "jupyter" not in out[5].metadata  # the cell that only closed the solution is gone
    assert "**Exercise 1.2**" in out[6] and "<summary><b>Solution to Exercise 1.2</b></summary>" in out[6]


def test_admonitions_dropdowns_and_code_blocks(tmp_path):
    out = _convert(tmp_path, "# First\n\n```{note}\nA $\\one$.\n```\n\n:::{admonition} Solution\n"
                   ":class: dropdown\nHidden.\n:::\n\n```python\n{cite:t}`not a role in code`\n```")
    assert "**Note.** A $\\mathbf{1}$." in out[0]
    assert "<details>\n<summary><b>Solution</b></summary>\n\nHidden.\n\n</details>" in out[0]
    assert "```python\n{cite:t}`not a role in code`\n```" in out[0]


def test_code_cells_and_outputs_are_copied_unchanged(tmp_path):
    cell = _code("x = '$\\\\R$ {cite:t}`a`'", "out\n", tags=["hide-input"])
    out = _convert(tmp_path, "# First", cell)
    assert out[1].source == cell.source and out[1].outputs == cell.outputs
    assert out[1].metadata["tags"] == ["hide-input"] and out[1].metadata["jupyter"] == {"source_hidden": True}


@pytest.mark.parametrize("markdown, message", [
    ("```{figure} x.png\n```", r"cell 1: MyST directive \{figure\} is not known"),
    ("{numref}`nothing`", r"cell 1: \{numref\}`nothing`: no such label"),
    ("{abbr2}`x`", r"cell 1: MyST role \{abbr2\} is not known"),
    ("```{prf:theorem}\n:label: t\n:wide: yes\nx\n```", r"option\(s\) \['wide'\] not known"),
    ("![a plot](plot.png)", r"local image 'plot.png'"),
    ('<img src="plot.png">', r"local image 'plot.png' in <img>"),
    ("{cite:t}`nobody`", r"citation 'nobody' is not in the bibliography"),
    ("{term}`nothing`", r"not in the glossary"),
    ("See {{ value }}.", r"MyST substitution left"),
    ("(dangling)=\n\nText.", None),  # a target before a paragraph: dropped silently is fine
    ("```{solution-end}\n```", r"\{solution-end\} without \{solution-start\}"),
    ("Term\n: definition", r"MyST definition list left"),
    ("{py:func}`numpy.dot`", r"\{py:func\}`numpy.dot`: the edition links only names of nclab"),
    ("{py:func}`nclab.theory.target`", r"the book has no API page for nclab.theory"),
])
def test_unknown_constructs_fail_loudly_naming_file_and_cell(tmp_path, markdown, message):
    if message is None:
        _convert(tmp_path, "# First", markdown)
        return
    with pytest.raises(je.EditionError, match=message) as info:
        _convert(tmp_path, "# First", markdown)
    assert str(info.value).startswith("book/first.ipynb, cell 1:")


def test_python_roles_link_to_the_api_pages(tmp_path):
    _book(tmp_path, _nb("# First"))
    (tmp_path / "book" / "api").mkdir()
    (tmp_path / "book" / "api" / "index.md").write_text("# API reference\n")
    (tmp_path / "book" / "api" / "theory.md").write_text("# nclab.theory\n")
    toc = copy.deepcopy(TOC)
    toc["parts"].append({"caption": "API", "chapters": [
        {"file": "book/api/index", "sections": [{"file": "book/api/theory"}]}]})
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    book = je.Book.load(tmp_path)
    nb = book.convert(_nb("# First", "{py:func}`nclab.theory.global_minimizer`, {py:mod}`nclab.theory`, "
                          "{func}`~nclab.theory.target`, {py:class}`the optimum <nclab.theory.GlobalMinimizer>` "
                          "and {py:func}`nclab.train`."), "book/first.ipynb")
    api = "https://org.github.io/repo/book/api/"
    assert nb.cells[1].source == (
        f"[`nclab.theory.global_minimizer()`]({api}theory.html#nclab.theory.global_minimizer), "
        f"[`nclab.theory`]({api}theory.html#module-nclab.theory), "
        f"[`target()`]({api}theory.html#nclab.theory.target), "
        f"[`the optimum`]({api}theory.html#nclab.theory.GlobalMinimizer) "
        f"and [`nclab.train()`]({api}index.html#nclab.train).")


def test_an_output_using_the_books_macros_is_refused(tmp_path):
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "$\\Yhat$"})]
    with pytest.raises(je.EditionError, match=r"cell 1: a text/markdown output uses the book's macros \['Yhat'\]"):
        _convert(tmp_path, "# First", cell)


def test_numbers_continue_over_unnumbered_pages_and_duplicate_labels_fail(tmp_path):
    book = _book(tmp_path, _nb("# First"))
    assert book.targets["thm-extra"].number == "1"  # the unnumbered part has one running counter
    (tmp_path / "book" / "extra.md").write_text("# Extra\n\n(thm-far)=\n## Again\n")
    with pytest.raises(je.EditionError, match="label 'thm-far' is defined twice"):
        je.Book.load(tmp_path)


def test_a_notebook_outside_the_book_is_numbered_on_its_own(tmp_path):
    book = _book(tmp_path, _nb("# First\n\n```{prf:theorem}\n:label: thm-main\nA.\n```"))
    draft = _nb("# Draft", "```{prf:theorem} Again\n:label: thm-main\nB.\n```\n\n"
                "Compare {prf:ref}`thm-main` with {prf:ref}`thm-far`.")
    out = book.convert(draft, tmp_path / "elsewhere" / "draft.ipynb")
    assert out.cells[0].source.endswith("made from the book's source.*")  # no online page
    assert out.cells[1].source.startswith("**Theorem 1** (Again)")
    assert "Compare Theorem 1 with [Theorem 2.1](https://org.github.io/repo/book/second.html#thm-far)." \
        in out.cells[1].source
    assert book.targets["thm-main"].number == "1.1"  # the book itself is unchanged


def test_build_writes_checks_and_removes_stale_files(tmp_path):
    _book(tmp_path, _nb("# First\n\nText."))
    stale = tmp_path / "jupyter" / "old.ipynb"
    stale.parent.mkdir()
    stale.write_text("{}")
    written = je.build(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "jupyter/first.ipynb", "jupyter/old.ipynb", "jupyter/second.ipynb"]
    assert not stale.exists() and je.build(tmp_path, check=True) == []
    (tmp_path / "book" / "first.ipynb").write_text(
        nbformat.writes(_nb("# First\n\nChanged.")))
    assert [p.name for p in je.build(tmp_path, check=True)] == ["first.ipynb"]


# --- the real book ------------------------------------------------------------------------------

BOOK = je.Book.load(ROOT)
NOTEBOOKS = BOOK.notebooks()


def test_the_committed_edition_is_up_to_date():
    stale = je.build(ROOT, check=True)
    assert not stale, (f"{[str(p.relative_to(ROOT)) for p in stale]} out of date: "
                       "run python tools/jupyter_edition.py")


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_edition_keeps_every_code_cell_and_output(source):
    src = nbformat.read(source, as_version=4)
    out = nbformat.read(ROOT / BOOK.edition_path(source), as_version=4)
    strip = lambda c: (c.source, c.outputs, c.metadata.get("tags"))  # noqa: E731
    assert [strip(c) for c in out.cells if c.cell_type == "code"] == \
           [strip(c) for c in src.cells if c.cell_type == "code"]


def _html_page(source: Path) -> Path:
    return HTML / source.relative_to(ROOT).with_suffix(".html")


needs_html = pytest.mark.skipif(not (HTML / "book").is_dir(), reason="build the book first (_build/html)")

_TITLE = re.compile(r"^\*\*(?P<kind>[A-Z][a-z]+) (?P<number>[\d.]+)\*\*", re.M)


@needs_html
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_agree_with_the_built_book(source):
    """Theorem/exercise titles and equation numbers, in page order, as the HTML shows them."""
    html = _html_page(source).read_text(encoding="utf-8")
    titles = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m)).strip()
              for m in re.findall(r'<p class="admonition-title">(.*?)</p>', html, re.S)]
    book_titles = [t.split("(")[0].strip() for t in titles if re.match(r"[A-Z][a-z]+ [\d.]+\b", t)]
    book_equations = re.findall(r'<span class="eqno">\(([\d.]+)\)', html)
    edition = nbformat.read(ROOT / BOOK.edition_path(source), as_version=4)
    text = "\n".join(c.source for c in edition.cells if c.cell_type == "markdown")
    ours = [f"{m['kind']} {m['number']}" for m in _TITLE.finditer(text)]
    assert ours == book_titles
    assert re.findall(r"\\tag\{([\d.]+)\}", text) == book_equations


@needs_html
def test_edition_links_into_the_book_point_at_existing_anchors():
    """Every link to the online book names a built page and, if any, an id on that page."""
    base = re.escape(BOOK.base_url)
    for source in NOTEBOOKS:
        edition = nbformat.read(ROOT / BOOK.edition_path(source), as_version=4)
        for cell in edition.cells:
            if cell.cell_type != "markdown":
                continue
            for page, anchor in re.findall(base + r"([^)#\s]+)(?:#([^)\s]+))?\)", cell.source):
                path = HTML / page
                assert path.is_file(), f"{source.name}: link to missing page {page}"
                if anchor:
                    assert f'id="{anchor}"' in path.read_text(encoding="utf-8"), \
                        f"{source.name}: {page} has no id {anchor!r}"


def _hrefs(html: str, text: str) -> list[str]:
    """hrefs of the header buttons whose visible text is ``text``."""
    found = []
    for m in re.finditer(r'<a href="([^"]+)"[^>]*>(.*?)</a>', html, re.S):
        label = re.sub(r"<[^>]+>", " ", m.group(2))
        if re.search(rf"(^|\s){re.escape(text)}(\s|$)", label):
            found.append(m.group(1).replace("&amp;", "&"))
    return found


@needs_html
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_launch_and_download_buttons_open_the_edition(source):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    org_repo = config["repository"]["url"].split("github.com/")[1].rstrip("/")
    branch = config["repository"]["branch"]
    edition = BOOK.edition_path(source).as_posix()
    page = _html_page(source)
    html = page.read_text(encoding="utf-8")
    assert _hrefs(html, "Colab") == [
        f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{edition}"]
    assert _hrefs(html, "Binder") == [
        f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=lab/tree/{edition}"]
    (download,) = _hrefs(html, ".ipynb")
    copy = (page.parent / download).resolve()
    assert copy == (HTML / edition).resolve() and copy.read_bytes() == (ROOT / edition).read_bytes()
