"""Build the Jupyter edition of the book: its notebooks in plain Jupyter markdown.

The chapters are written in MyST (the book's macros, ``{prf:theorem}`` and ``{exercise}``
directives, ``{cite:t}`` and ``{prf:ref}`` roles, labelled equations). Jupyter Book renders
them; JupyterLab, Jupyter Notebook, VS Code and Colab do not, and show them as raw text. This
module writes, for every notebook page of ``_toc.yml``, a copy whose markdown any client
renders (``jupyter/`` mirrors ``book/``):

* the book's MathJax macros (``_config.yml``, ``sphinx.config.mathjax3_config``) are expanded
  inside the math, exactly as MathJax substitutes them;
* theorems, propositions, proofs, exercises and admonitions become a bold title with the
  book's number (``**Theorem 4.1** (title)``); solutions and dropdowns become ``<details>``
  blocks, and the code cells of a solution are collapsed (``jupyter.source_hidden``);
* citations become author-year text (``Liu [2024]``, ``[Papyan et al., 2020]``) with a
  references list, formatted from ``book/references.bib``, in a last cell;
* cross-references become their text (``Theorem 4.1``, ``(4.2)``), linked to the online book
  when they point into another page (the base URL is ``html.baseurl`` in ``_config.yml``);
* links to the API reference (``{py:func}`nclab.theory.global_minimizer```, ``{py:mod}``, ...)
  become the name in code, linked to its entry on the module's page of the online book
  (``book/api/<module>``; names at the top level of ``nclab`` are on ``book/api/index``);
* code cells, their outputs and their metadata are copied unchanged, so the edition executes
  exactly like the source and passes the same strict nbval.

Numbers are computed the way Sphinx assigns them to the book (one counter per kind of
directive, prefixed with the chapter number in the numbered part of the table of contents,
labelled equations numbered per page); ``tests/test_edition.py`` compares them with the titles
of the built HTML.

Any MyST construct this module does not know (a directive, a role, an option, a target line,
a substitution, a local image) raises :class:`EditionError` naming the file, the cell and the
construct, and the finished markdown is scanned again for anything MyST-looking, so a new
construct cannot reach students raw: teach it to this module first.

Why a converter over the notebook JSON rather than ``sphinx-tojupyter``: that builder needs a
second full Sphinx build, pulls in dask, distributed, nbdime and GitPython, and translates
docutils nodes it has been taught; sphinx-proof and sphinx-exercise nodes are not among them.
The constructs the book uses are few and line-based, the cells and outputs must be copied
byte for byte anyway (nbval), and this way every construct has a test.

Commands (from the repository root)::

    python tools/jupyter_edition.py            # write jupyter/ from every notebook in _toc.yml
    python tools/jupyter_edition.py --check    # exit 1 if jupyter/ is not up to date
    python tools/jupyter_edition.py SRC.ipynb -o OUT.ipynb   # one notebook of the book

The last form is for other pipelines (the assignments' student editions): convert the source
notebook first, then strip solutions from the result. In Python:
``Book.load(root).convert(nb, "book/assignments/ps1_balanced.ipynb")``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Folder of the edition, mirroring ``book/``: ``book/X.ipynb`` -> ``jupyter/X.ipynb``.
EDITION_DIR = "jupyter"
BOOK_DIR = "book"

# --------------------------------------------------------------------------------------------
# Vocabulary: what the converter knows. Anything else is an error.
# --------------------------------------------------------------------------------------------

#: sphinx-proof directives (each its own counter, like the book) and their display names.
PROOF_KINDS = {
    name: name.capitalize()
    for name in (
        "theorem", "lemma", "definition", "remark", "conjecture", "corollary", "algorithm",
        "example", "property", "observation", "proposition", "assumption", "axiom", "criterion",
    )
}
#: Admonitions of docutils/Sphinx and their titles.
ADMONITIONS = {
    name: name.capitalize()
    for name in ("note", "warning", "tip", "important", "hint", "caution", "attention",
                 "danger", "error", "seealso")
}
ADMONITIONS["seealso"] = "See also"
#: Options each directive family accepts (``class: dropdown`` turns a block into <details>).
KNOWN_OPTIONS = {
    "proof": {"label", "class", "nonumber"},
    "prf:proof": {"class"},
    "exercise": {"label", "class", "nonumber", "hidden"},
    "solution": {"label", "class", "hidden"},
    "admonition": {"class", "name"},
    "math": {"label", "class", "name", "nowrap"},
    "dropdown": {"open", "name", "class"},
}
#: The two roles that cite, and how (textual: ``Liu [2024]``, parenthetical: ``[Liu, 2024]``).
CITE_ROLES = {"cite:t": "textual", "cite:ts": "textual", "cite:p": "parenthetical",
              "cite:ps": "parenthetical"}
#: Roles of Sphinx's Python domain (with or without ``py:``), and whether the book shows the
#: name with ``()`` as Sphinx does for functions and methods.
PY_ROLES = {kind: kind in ("func", "meth") for kind in
            ("mod", "func", "class", "meth", "attr", "data", "exc", "obj")}
#: The API reference: one page per module of the package, ``API_DIR/<module>``, and the
#: top-level names on ``API_DIR/index``.
API_PACKAGE, API_DIR = "nclab", "book/api"

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<info>[^`]*)$")
_DIRECTIVE_INFO = re.compile(r"^\s*\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*?)\s*$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*?)\s*$")
_TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_ROLE = re.compile(r"\{(?P<name>[A-Za-z][\w:+.-]*)\}(?P<ticks>`+)(?P<content>.+?)(?P=ticks)", re.S)
_TOKENS = re.compile(
    r"(?P<esc>\\[$`\\{\[\]])"
    r"|\{(?P<r_name>[A-Za-z][\w:+.-]*)\}(?P<r_ticks>`+)(?P<r_content>.+?)(?P=r_ticks)"
    r"|(?P<code>(?P<cticks>`+).+?(?P=cticks))"
    r"|(?P<dmath>\$\$(?P<dbody>.+?)\$\$(?:[ \t]*\((?P<dlabel>[^()\s]+)\)[ \t]*(?=\n|$))?)"
    r"|(?P<env>\\begin\{(?P<envname>[A-Za-z*]+)\}.*?\\end\{(?P=envname)\})"
    r"|(?P<imath>\$(?P<ibody>[^$\n]+(?:\n[^$\n]+)*?)\$)"
    r"|(?P<img>!\[[^\]]*\]\((?P<iurl>[^)\s]+)\))"
    r"|(?P<dest>\]\((?P<url>[^)\s]+)\))",
    re.S,
)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=[\"'](?P<url>[^\"']+)[\"']", re.I)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)
_MACRO_USE = re.compile(r"\\([A-Za-z]+)")

#: Left in the finished markdown, each of these means a MyST construct slipped through.
_LEFTOVERS = {
    "role": re.compile(r"\{[A-Za-z][\w:+.-]*\}`"),
    "directive": re.compile(r"^\s*(?:`{3,}|:{3,})\s*\{", re.M),
    "colon fence": re.compile(r"^\s*:{3,}", re.M),
    "target": re.compile(r"^\([^()\s]+\)=\s*$", re.M),
    "directive option": re.compile(r"^:(?:label|class|name|nonumber|dropdown):", re.M),
    "substitution": re.compile(r"\{\{[^}]*\}\}"),
    "definition list": re.compile(r"^: \S", re.M),
}


class EditionError(ValueError):
    """A construct the edition cannot render, with the file and cell where it is."""


@dataclass
class Target:
    """Something a cross-reference can point to."""

    docname: str
    kind: str  # "theorem", ..., "exercise", "equation", "section", "figure", "admonition"
    number: str | None = None
    title: str = ""  # raw MyST title (rendered on use)

    @property
    def display(self) -> str:
        name = PROOF_KINDS.get(self.kind) or {"exercise": "Exercise", "figure": "Fig."}.get(self.kind, "")
        if self.kind == "equation":
            return f"({self.number})"
        if name and self.number:
            return f"{name} {self.number}"
        return self.title


@dataclass
class Directive:
    """A fenced MyST directive (or, with ``name`` None, a plain code block)."""

    name: str | None
    argument: str
    options: dict[str, str]
    body: str
    raw: str


@dataclass
class Context:
    """Where the converter is, for error messages and for numbering."""

    path: str
    docname: str
    cell: int | None = None
    cited: list[str] = field(default_factory=list)

    def error(self, what: str) -> EditionError:
        where = self.path if self.cell is None else f"{self.path}, cell {self.cell}"
        return EditionError(f"{where}: {what}")


# --------------------------------------------------------------------------------------------
# Markdown block structure: fenced directives and plain text.
# --------------------------------------------------------------------------------------------

def split_blocks(text: str) -> list[str | Directive]:
    """Split markdown into plain text and fenced blocks (directives and code blocks).

    A fence is 3+ backticks or 3+ colons (MyST's colon_fence); it closes at a line of the same
    character at least as long, as in CommonMark. Directive options are the ``:key: value``
    lines (or a ``---`` YAML block) at the start of the body.
    """
    lines = text.split("\n")
    out: list[str | Directive] = []
    plain: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m or (m["fence"][0] == ":" and not m["info"].strip().startswith("{")
                     and m["info"].strip()):
            plain.append(lines[i])
            i += 1
            continue
        fence = m["fence"]
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if plain:
            out.append("\n".join(plain))
            plain = []
        raw = "\n".join(lines[i:j + 1])
        out.append(_directive(m["info"], lines[i + 1:j], raw, fence[0] == ":"))
        i = j + 1
    if plain:
        out.append("\n".join(plain))
    return out


def _directive(info: str, body_lines: list[str], raw: str, colon: bool) -> Directive:
    m = _DIRECTIVE_INFO.match(info)
    if not m:
        if colon:  # a bare ':::' fence is a MyST construct, not a code block
            return Directive(name=":::", argument=info.strip(), options={}, body="", raw=raw)
        return Directive(name=None, argument=info.strip(), options={}, body="\n".join(body_lines), raw=raw)
    options: dict[str, str] = {}
    k = 0
    if body_lines and body_lines[0].strip() == "---":
        end = next((n for n in range(1, len(body_lines)) if body_lines[n].strip() == "---"), None)
        if end is not None:
            options = {str(key): str(value) for key, value in (yaml.safe_load("\n".join(body_lines[1:end])) or {}).items()}
            k = end + 1
    else:
        while k < len(body_lines) and (opt := _OPTION.match(body_lines[k])):
            options[opt["key"]] = opt["value"]
            k += 1
    body = "\n".join(body_lines[k:]).strip("\n")
    return Directive(name=m["name"], argument=m["arg"], options=options, body=body, raw=raw)


def headings(text: str) -> list[tuple[str | None, int, str]]:
    """``(label or None, level, heading text)`` of the ATX headings outside fenced blocks."""
    found = []
    for block in split_blocks(text):
        if not isinstance(block, str):
            continue
        label = None
        for line in block.split("\n"):
            if t := _TARGET.match(line):
                label = t["label"]
                continue
            if h := _HEADING.match(line):
                found.append((label, len(h["hashes"]), h["text"]))
            if line.strip():
                label = None
    return found


# --------------------------------------------------------------------------------------------
# Math: the book's macros.
# --------------------------------------------------------------------------------------------

def _tex_argument(tex: str, pos: int) -> tuple[str, int]:
    """One TeX macro argument starting at ``pos`` (spaces skipped): a braced group or a token."""
    while pos < len(tex) and tex[pos].isspace():
        pos += 1
    if pos >= len(tex):
        raise ValueError("macro argument missing at the end of the formula")
    if tex[pos] == "{":
        depth, end = 0, pos
        while end < len(tex):
            if tex[end] == "\\":
                end += 2
                continue
            depth += {"{": 1, "}": -1}.get(tex[end], 0)
            if depth == 0:
                return tex[pos + 1:end], end + 1
            end += 1
        raise ValueError("unbalanced braces in a macro argument")
    if tex[pos] == "\\":
        m = re.match(r"\\(?:[A-Za-z]+|.)", tex[pos:])
        return m.group(0), pos + len(m.group(0))
    return tex[pos], pos + 1


def expand_macros(tex: str, macros: dict[str, tuple[str, int]]) -> str:
    """Replace the book's macros in a formula by their definitions, as MathJax would.

    ``macros`` maps a name (without backslash) to ``(body, number of arguments)``; arguments
    are ``#1``.. in the body. Expansion repeats until no macro is left (bodies may use
    macros), at most 20 rounds.
    """
    for _ in range(20):
        out, pos, changed = [], 0, False
        for m in _MACRO_USE.finditer(tex):
            if m.start() < pos or m[1] not in macros or (m.start() > 0 and tex[m.start() - 1] == "\\"):
                continue
            body, nargs = macros[m[1]]
            end = m.end()
            args = []
            for _n in range(nargs):
                arg, end = _tex_argument(tex, end)
                args.append(arg)
            for n, arg in enumerate(args, 1):
                body = body.replace(f"#{n}", arg)
            if re.search(r"\\[A-Za-z]+$", body) and end < len(tex) and tex[end].isalpha():
                body += " "
            out.append(tex[pos:m.start()] + body)
            pos, changed = end, True
        tex = "".join(out) + tex[pos:]
        if not changed:
            return tex
    raise ValueError("macro expansion does not terminate (a macro uses itself?)")


# --------------------------------------------------------------------------------------------
# The book: configuration, table of contents, labels and their numbers, bibliography.
# --------------------------------------------------------------------------------------------

def _toc_entries(entry: Any, numbered: bool = False) -> list[tuple[str, bool]]:
    """``(file, in a numbered part)`` for every file of ``_toc.yml``, in order."""
    found = []
    if isinstance(entry, dict):
        numbered = numbered or bool(entry.get("numbered"))
        for key in ("root", "file"):
            if isinstance(entry.get(key), str):
                found.append((entry[key], numbered and key == "file"))
        for key in ("parts", "chapters", "sections"):
            for child in entry.get(key) or []:
                found.extend(_toc_entries(child, numbered))
    return found


def _source_file(root: Path, name: str) -> Path:
    for suffix in ("", ".ipynb", ".md"):
        if (path := root / f"{name}{suffix}").is_file():
            return path
    raise EditionError(f"_toc.yml names {name!r}, which has no .ipynb or .md file")


def _markdown_of(path: Path, nb: Any = None) -> list[tuple[int | None, str]]:
    """``(cell index or None, markdown)`` for a notebook's markdown cells or a .md page."""
    if nb is not None or path.suffix == ".ipynb":
        nb = nb if nb is not None else json.loads(path.read_text(encoding="utf-8"))
        return [(i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
                for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"]
    return [(None, path.read_text(encoding="utf-8"))]


def _walk_all(text: str):
    """``("text", str)`` and ``("directive", Directive)`` items of ``text`` in document order,
    directive bodies included (code blocks are not looked into)."""
    for block in split_blocks(text):
        if isinstance(block, str):
            yield "text", block
        elif block.name is not None:
            yield "directive", block
            yield from _walk_all(block.body)


@dataclass
class Book:
    """Everything about the book that the conversion of one page needs."""

    root: Path
    title: str
    base_url: str
    macros: dict[str, tuple[str, int]]
    pages: list[tuple[str, Path, str | None]]  # (docname, source, chapter number or None)
    targets: dict[str, Target] = field(default_factory=dict)
    numbers: dict[str, list[str | None]] = field(default_factory=dict)  # per page, in order
    titles: dict[str, str] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)  # glossary term (lower case) -> anchor
    glossary: str | None = None  # docname of the page with the {glossary}
    bibliography: Any = None  # pybtex BibliographyData
    shadow: bool = False  # a page outside the toc may redefine the book's labels

    @classmethod
    def load(cls, root: Path | str = ROOT) -> "Book":
        """Read ``_config.yml``, ``_toc.yml``, every page's labels, the glossary and the .bib."""
        root = Path(root)
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        base_url = (config.get("html") or {}).get("baseurl")
        if not base_url:
            raise EditionError("_config.yml: html.baseurl (the online book's address) is not set")
        raw_macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
        macros = {name: (value, 0) if isinstance(value, str) else (value[0], int(value[1]))
                  for name, value in raw_macros.items()}
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        pages, chapter = [], 0
        for name, numbered in _toc_entries(toc):
            path = _source_file(root, name)
            docname = path.relative_to(root).with_suffix("").as_posix()
            chapter += numbered
            pages.append((docname, path, str(chapter) if numbered else None))
        book = cls(root, config.get("title", "the book"), base_url.rstrip("/") + "/", macros, pages)
        book.bibliography = _load_bibliography(root, config)
        for docname, path, chapter in pages:
            book._index_page(docname, path, chapter)
        return book

    # -- index ---------------------------------------------------------------------------------

    def _index_page(self, docname: str, path: Path, chapter: str | None, nb: Any = None) -> None:
        """Record the page's title, labels and the numbers Sphinx gives its directives.

        Sphinx numbers each kind of enumerable node with its own counter, per chapter in the
        numbered part (``4.1``) and with one running counter over the unnumbered pages; labelled
        equations are numbered per page.
        """
        self.numbers[docname] = []
        equations = 0
        for cell, text in _markdown_of(path, nb):
            for label, level, heading in headings(text):
                if level == 1 and docname not in self.titles:
                    self.titles[docname] = heading
                if label:
                    self._add(label, Target(docname, "section", title=heading), path, cell)
            for what, item in _walk_all(text):
                if what == "text":
                    for m in _TOKENS.finditer(item):
                        if m["dlabel"]:
                            equations += 1
                            self._add(m["dlabel"], Target(docname, "equation", _eq(chapter, equations)), path, cell)
                    continue
                kind, label = _kind(item.name), item.options.get("label") or item.options.get("name")
                if kind in PROOF_KINDS or kind == "exercise":
                    number = None if "nonumber" in item.options else self._next(kind, chapter)
                    self.numbers[docname].append(number)
                    if label:
                        self._add(label, Target(docname, kind, number, item.argument), path, cell)
                elif kind == "math" and label:
                    equations += 1
                    self._add(label, Target(docname, "equation", _eq(chapter, equations)), path, cell)
                elif kind == "glossary":
                    self.glossary = docname
                    self.terms.update(_glossary_terms(item.body))
                elif label:
                    self._add(label, Target(docname, kind or "block", title=item.argument), path, cell)
        if nb is not None or path.suffix == ".ipynb":
            nb = nb if nb is not None else json.loads(path.read_text(encoding="utf-8"))
            for i, cell in enumerate(nb["cells"]):
                figure = ((cell.get("metadata") or {}).get("mystnb") or {}).get("figure")
                if cell["cell_type"] == "code" and figure:
                    number = self._next("figure", chapter)
                    if figure.get("name"):
                        self._add(figure["name"], Target(docname, "figure", number, figure.get("caption", "")), path, i)

    _counters: dict = None  # type: ignore[assignment]

    def _next(self, kind: str, chapter: str | None) -> str:
        if self._counters is None:
            self._counters = {}
        key = (kind, chapter)
        self._counters[key] = self._counters.get(key, 0) + 1
        return f"{chapter}.{self._counters[key]}" if chapter else str(self._counters[key])

    def _add(self, label: str, target: Target, path: Path, cell: int | None) -> None:
        if label in self.targets and not self.shadow:
            where = f"{path}, cell {cell}" if cell is not None else str(path)
            raise EditionError(f"{where}: label {label!r} is defined twice")
        self.targets[label] = target

    # -- addresses -------------------------------------------------------------------------------

    def url(self, docname: str, anchor: str | None = None) -> str:
        """The online book's address of a page (and an anchor in it)."""
        return f"{self.base_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def edition_path(self, source: Path) -> Path:
        """``book/X.ipynb`` -> ``jupyter/X.ipynb`` (relative to the root)."""
        rel = Path(source).resolve().relative_to(self.root.resolve())
        return Path(EDITION_DIR) / rel.relative_to(BOOK_DIR)

    def notebooks(self) -> list[Path]:
        """The notebook pages of the table of contents, in order."""
        return [path for _, path, _ in self.pages if path.suffix == ".ipynb"]

    # -- conversion ------------------------------------------------------------------------------

    def convert(self, nb: Any, source: str | Path) -> nbformat.NotebookNode:
        """The Jupyter edition of notebook ``nb`` (a dict or NotebookNode) of page ``source``.

        ``source`` is the notebook's path (relative to the book's root, or absolute); it names
        the page for numbers and cross-references, and appears in error messages. A notebook
        that is not a page of ``_toc.yml`` (an assignment in the making, say) is numbered on its
        own and may refer to the book's labels. Raises :class:`EditionError` on any construct
        the edition does not know.
        """
        nb = nbformat.from_dict(copy.deepcopy(dict(nb)))
        path = Path(source)
        if path.is_absolute():
            inside = path.resolve().is_relative_to(self.root.resolve())
            path = path.resolve().relative_to(self.root.resolve()) if inside else Path(path.name)
        rel = path
        docname = rel.with_suffix("").as_posix()
        book = self
        if docname not in self.numbers:  # a notebook outside the book: index it on its own
            book = copy.copy(self)
            book.targets, book.numbers = dict(self.targets), {}
            book._counters, book.shadow = {}, True
            book._index_page(docname, path, None, nb=nb)
        return _Converter(book, Context(path=rel.as_posix(), docname=docname)).notebook(nb)


def _eq(chapter: str | None, n: int) -> str:
    return f"{chapter}.{n}" if chapter else str(n)


def _kind(name: str | None) -> str | None:
    if name is not None and name.startswith("prf:") and name[4:] in PROOF_KINDS:
        return name[4:]
    return name


def _glossary_terms(body: str) -> dict[str, str]:
    """Glossary terms (the unindented lines) and the anchor ids Sphinx gives them.

    Sphinx's ids keep the case of the term (``term-NC1``, ``term-simplex-ETF``): its
    ``_make_id`` is docutils' ``make_id`` without the lower-casing, so it is the one to use.
    """
    from sphinx.util.nodes import _make_id

    return {line.strip().lower(): _make_id("term-" + line.strip())
            for line in body.split("\n") if line.strip() and not line[0].isspace()}


def _load_bibliography(root: Path, config: dict) -> Any:
    from pybtex.database import BibliographyData, parse_file

    data = BibliographyData()
    for name in config.get("bibtex_bibfiles") or []:
        for key, entry in parse_file(str(root / name)).entries.items():
            data.entries[key] = entry
    return data


# --------------------------------------------------------------------------------------------
# Converting one notebook.
# --------------------------------------------------------------------------------------------

class _Converter:
    def __init__(self, book: Book, ctx: Context):
        self.book, self.ctx = book, ctx
        self.solution: str | None = None  # title of the open {solution-start}
        self.numbered = iter(book.numbers[ctx.docname])

    # -- notebook and cells --------------------------------------------------------------------

    def notebook(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        cells, banner = [], True
        for i, cell in enumerate(nb.cells):
            self.ctx.cell = i
            if cell.cell_type == "markdown":
                text = self.cell_markdown(cell.source)
                if banner:
                    text, banner = self._banner(text), False
                if not text.strip():
                    continue  # a cell that only closed a solution
                cell.source = text
            elif cell.cell_type == "code":
                self._check_outputs(cell)
                self._hide(cell)
            cells.append(cell)
        self.ctx.cell = None
        if self.solution is not None:
            raise self.ctx.error("{solution-start} without {solution-end}")
        if self.ctx.cited:
            cells.append(nbformat.v4.new_markdown_cell(self._references(), id="edition-references"))
        nb.cells = cells
        return nb

    def _banner(self, text: str) -> str:
        """After the first heading: what this notebook is, and where the book is."""
        note = f"*The Jupyter edition of a page of [{self.book.title}]({self.book.base_url}), made from the book's source"
        if self.ctx.docname in self.book.titles and any(d == self.ctx.docname for d, _, _ in self.book.pages):
            note += f"; read the page online [here]({self.book.url(self.ctx.docname)})"
        note += ".*"
        lines = text.split("\n")
        at = next((n + 1 for n, line in enumerate(lines) if _HEADING.match(line)), 0)
        return "\n".join(lines[:at] + ["", note, ""] + lines[at:]).replace("\n\n\n", "\n\n").strip("\n")

    def _hide(self, cell: nbformat.NotebookNode) -> None:
        """Collapse the code cells of an open solution, and the book's hidden inputs/outputs."""
        tags = set(cell.metadata.get("tags", []))
        in_solution = self.solution is not None
        hidden = {
            "source_hidden": in_solution or bool(tags & {"hide-input", "hide-cell", "remove-input"}),
            "outputs_hidden": in_solution or bool(tags & {"hide-output", "hide-cell", "remove-output"}),
        }
        if any(hidden.values()):
            jupyter = cell.metadata.setdefault("jupyter", {})
            jupyter.update({key: True for key, value in hidden.items() if value})

    def _check_outputs(self, cell: nbformat.NotebookNode) -> None:
        for output in cell.get("outputs", []):
            for mime in ("text/markdown", "text/latex"):
                text = output.get("data", {}).get(mime) or ""
                text = "".join(text) if isinstance(text, list) else text
                if used := sorted({m for m in _MACRO_USE.findall(text) if m in self.book.macros}):
                    raise self.ctx.error(f"a {mime} output uses the book's macros {used}, which "
                                         "Jupyter does not define: print them expanded")

    # -- markdown --------------------------------------------------------------------------------

    def cell_markdown(self, text: str) -> str:
        """A markdown cell; a solution opened by {solution-start} may span cells."""
        out: list[str] = []
        buffer = [] if self.solution is not None else None
        title = f"{self.solution} (continued)" if self.solution is not None else None
        for block in split_blocks(text):
            name = block.name if isinstance(block, Directive) else None
            if name in ("solution-start", "solution-end"):
                self._options(block, {"class", "label", "hidden"})
                if buffer is not None and "\n".join(buffer).strip():
                    out.append(_details(title, "\n".join(buffer)))
                if name == "solution-start":
                    if self.solution is not None:
                        raise self.ctx.error("{solution-start} inside an open solution")
                    self.solution = title = self._solution_title(block.argument.strip())
                    buffer = []
                else:
                    if self.solution is None:
                        raise self.ctx.error("{solution-end} without {solution-start}")
                    self.solution = title = buffer = None
                continue
            (buffer if buffer is not None else out).append(self.block(block))
        if buffer is not None and "\n".join(buffer).strip():
            out.append(_details(title, "\n".join(buffer)))
        markdown = "\n".join(out)
        self._check_clean(markdown)
        return markdown

    def markdown(self, text: str) -> str:
        """The body of a directive."""
        return "\n".join(self.block(block) for block in split_blocks(text)).strip("\n")

    def block(self, block: str | Directive) -> str:
        if isinstance(block, str):
            return self.inline("\n".join(line for line in block.split("\n") if not _TARGET.match(line)))
        if block.name is None:
            return block.raw  # a plain code block
        return self.directive(block)

    def _options(self, d: Directive, allowed: set[str]) -> None:
        if unknown := sorted(set(d.options) - allowed):
            raise self.ctx.error(f"{{{d.name}}}: option(s) {unknown} not known to the Jupyter edition")

    def directive(self, d: Directive) -> str:
        kind = _kind(d.name)
        family = "proof" if kind in PROOF_KINDS else "admonition" if kind in ADMONITIONS else kind
        handler = {
            "proof": self._numbered, "exercise": self._numbered, "prf:proof": self._proof,
            "solution": self._solution, "admonition": self._admonition, "math": self._math,
            "dropdown": self._dropdown,
        }.get(family)
        if handler is None:
            where = " (it must start a markdown cell's top level)" if family in ("solution-start", "solution-end") else ""
            raise self.ctx.error(f"MyST directive {{{d.name}}} is not known to the Jupyter edition{where} "
                                 "(teach tools/jupyter_edition.py to render it)")
        self._options(d, KNOWN_OPTIONS[family])
        return handler(d)

    # -- directives ------------------------------------------------------------------------------

    def _numbered(self, d: Directive) -> str:
        number = next(self.numbered, None)
        if "hidden" in d.options:
            return ""
        kind = _kind(d.name)
        name = PROOF_KINDS.get(kind, "Exercise")
        title = (f"**{name} {number}**" if number else f"**{name}**") + (
            f" ({self.inline(d.argument)})" if d.argument else "")
        body = self.markdown(d.body)
        if "dropdown" in d.options.get("class", "").split():
            return _details(title, body)
        return f"{title}\n\n{body}".rstrip()

    def _proof(self, d: Directive) -> str:
        return f"**Proof.** {_lead(self.markdown(d.body))}\n\n∎"

    def _solution_title(self, label: str) -> str:
        target = self.book.targets.get(label)
        if target is None or target.kind != "exercise":
            raise self.ctx.error(f"a solution refers to {label!r}, which is not an exercise's label")
        title = f"Solution to Exercise {target.number}" if target.number else "Solution"
        return title + (f" ({self.inline(target.title)})" if target.title else "")

    def _solution(self, d: Directive) -> str:
        return _details(self._solution_title(d.argument.strip()), self.markdown(d.body))

    def _admonition(self, d: Directive) -> str:
        if d.name == "admonition":
            if not d.argument:
                raise self.ctx.error("{admonition} needs a title")
            title = self.inline(d.argument)
        else:
            title = ADMONITIONS[d.name] + (f": {self.inline(d.argument)}" if d.argument else "")
        body = self.markdown(d.body)
        if "dropdown" in d.options.get("class", "").split():
            return _details(title, body)
        return f"**{title}.** {_lead(body)}"

    def _dropdown(self, d: Directive) -> str:
        return _details(self.inline(d.argument) or "Details", self.markdown(d.body))

    def _math(self, d: Directive) -> str:
        label = d.options.get("label") or d.options.get("name")
        tex = self._tex(d.body.strip())
        if label:
            tex += f" \\tag{{{self.book.targets[label].number}}}"
        return f"$$\n{tex}\n$$"

    # -- inline ----------------------------------------------------------------------------------

    def _tex(self, tex: str) -> str:
        try:
            return expand_macros(tex, self.book.macros)
        except ValueError as exc:
            raise self.ctx.error(f"math {tex.strip()[:60]!r}: {exc}") from None

    def inline(self, text: str) -> str:
        """Roles, math, links and images in a run of markdown text."""
        out, pos = [], 0
        for m in _TOKENS.finditer(text):
            out.append(text[pos:m.start()])
            pos = m.end()
            if m["r_name"]:
                out.append(self.role(m["r_name"], m["r_content"]))
            elif m["dmath"]:
                tex = self._tex(m["dbody"])
                if m["dlabel"]:
                    tex = f"{tex.rstrip()} \\tag{{{self.book.targets[m['dlabel']].number}}}\n"
                out.append(f"$${tex}$$")
            elif m["env"]:
                out.append(self._tex(m["env"]))
            elif m["imath"]:
                out.append(f"${self._tex(m['ibody'])}$")
            elif m["img"] and not _EXTERNAL.match(m["iurl"]):
                raise self.ctx.error(f"local image {m['iurl']!r}: the edition cannot carry it "
                                     "(draw it in a code cell, or use an absolute URL)")
            elif m["dest"] and not _EXTERNAL.match(m["url"]):
                out.append(f"]({self._local_url(m['url'])})")
            else:  # escapes, code spans, external links and images stay as they are
                out.append(m.group(0))
        out.append(text[pos:])
        result = "".join(out)
        for img in _IMG_SRC.finditer(result):
            if not _EXTERNAL.match(img["url"]):
                raise self.ctx.error(f"local image {img['url']!r} in <img>: the edition cannot carry it")
        return result

    def _local_url(self, url: str) -> str:
        """A link to a page of the book (``x.md``, ``ps1.ipynb#a``, ``#label``) made absolute."""
        path, _, anchor = url.partition("#")
        if not path:
            target = self.book.targets.get(anchor)
            if target is None:
                raise self.ctx.error(f"link to #{anchor}: no such label in the book")
            return self.book.url(target.docname, anchor)
        page = re.sub(r"\.(md|ipynb)$", "", _normalise(f"{Path(self.ctx.docname).parent.as_posix()}/{path}"))
        if page not in self.book.titles:
            raise self.ctx.error(f"link to {url!r}: not a page of the book")
        return self.book.url(page, anchor or None)

    def role(self, name: str, content: str) -> str:
        if name in CITE_ROLES:
            return self._cite(CITE_ROLES[name], content)
        if name in ("prf:ref", "ref", "numref", "eq"):
            return self._ref(name, content)
        if name.removeprefix("py:") in PY_ROLES:
            return self._py(name.removeprefix("py:"), content)
        handler = {
            "doc": self._doc, "term": self._term, "math": lambda c: f"${self._tex(c)}$",
            "sub": lambda c: f"<sub>{c}</sub>", "sup": lambda c: f"<sup>{c}</sup>",
            "kbd": lambda c: f"<kbd>{c}</kbd>", "abbr": lambda c: re.sub(r"\s*\(.*\)$", "", c),
        }.get(name)
        if handler is None:
            raise self.ctx.error(f"MyST role {{{name}}} is not known to the Jupyter edition "
                                 "(teach tools/jupyter_edition.py to render it)")
        return handler(content)

    def _ref(self, role: str, content: str) -> str:
        text, label = _explicit(content)
        target = self.book.targets.get(label)
        if target is None:
            raise self.ctx.error(f"{{{role}}}`{content}`: no such label in the book")
        if text is None:
            text = self.inline(target.display)
        elif target.number:
            text = text.replace("{number}", target.number).replace("%s", target.number)
        if target.docname == self.ctx.docname:
            return text
        return f"[{text}]({self.book.url(target.docname, label)})"

    def _py(self, kind: str, content: str) -> str:
        """``{py:func}`nclab.theory.global_minimizer``` -> the name in code, linked to its API entry.

        Sphinx's display rules: ``~`` shows the last part of the name only, functions and
        methods get ``()``, ``text <name>`` shows the text.
        """
        text, name = _explicit(content)
        short, name = name.startswith("~"), name.lstrip("~")
        parts = name.split(".")
        if parts[0] != API_PACKAGE or len(parts) < 2 or not all(p.isidentifier() for p in parts):
            raise self.ctx.error(f"{{py:{kind}}}`{content}`: the edition links only names of {API_PACKAGE}")
        page = f"{API_DIR}/{parts[1]}"
        if page not in self.book.titles:
            page = f"{API_DIR}/index"
        if page not in self.book.titles:
            raise self.ctx.error(f"{{py:{kind}}}`{content}`: the book has no API page for {'.'.join(parts[:2])}")
        if text is None:
            text = f"{parts[-1] if short else name}{'()' if PY_ROLES[kind] else ''}"
        text = f"`{text}`"  # Sphinx shows these names in code, an explicit text too
        anchor = f"module-{name}" if kind == "mod" else name
        return f"[{text}]({self.book.url(page, anchor)})"

    def _doc(self, content: str) -> str:
        text, path = _explicit(content)
        base = "" if path.startswith("/") else Path(self.ctx.docname).parent.as_posix()
        page = re.sub(r"\.(md|ipynb)$", "", _normalise(f"{base}/{path}"))
        if page not in self.book.titles:
            raise self.ctx.error(f"{{doc}}`{content}`: not a page of the book")
        return f"[{text or self.inline(self.book.titles[page])}]({self.book.url(page)})"

    def _term(self, content: str) -> str:
        text, term = _explicit(content)
        anchor = self.book.terms.get(term.lower())
        if anchor is None or self.book.glossary is None:
            raise self.ctx.error(f"{{term}}`{content}`: not in the glossary")
        return f"[{text or term}]({self.book.url(self.book.glossary, anchor)})"

    def _cite(self, style: str, content: str) -> str:
        labels = []
        for key in (k.strip() for k in content.split(",") if k.strip()):
            entry = self.book.bibliography.entries.get(key)
            if entry is None:
                raise self.ctx.error(f"citation {key!r} is not in the bibliography")
            if key not in self.ctx.cited:
                self.ctx.cited.append(key)
            labels.append((_authors(entry), entry.fields.get("year", "n.d.")))
        labels.sort()  # as sphinxcontrib-bibtex orders the keys of one citation
        if style == "textual":
            return ", ".join(f"{who} [{year}]" for who, year in labels)
        return "[" + ", ".join(f"{who}, {year}" for who, year in labels) + "]"

    def _references(self) -> str:
        """The cited entries, formatted by pybtex (style ``plain``, markdown backend)."""
        from pybtex.plugin import find_plugin

        style = find_plugin("pybtex.style.formatting", "plain")()
        backend = find_plugin("pybtex.backends", "markdown")()
        entries = sorted((self.book.bibliography.entries[key] for key in self.ctx.cited),
                         key=lambda e: (_authors(e), e.fields.get("year", "")))
        lines = ["## References", ""]
        for entry in entries:
            text = " ".join(style.format_entry(entry.key, entry).text.render(backend).split("\n"))
            lines.append(f"- {_authors(entry)} [{entry.fields.get('year', 'n.d.')}]: {text}")
        return "\n".join(lines)

    # -- the last line of defence ----------------------------------------------------------------

    def _check_clean(self, markdown: str) -> None:
        prose = _strip_code_and_math(markdown)
        for what, pattern in _LEFTOVERS.items():
            if m := pattern.search(prose):
                raise self.ctx.error(f"MyST {what} left in the markdown: {m.group(0)!r}")
        for m in _TOKENS.finditer(markdown):
            tex = m["dbody"] or m["ibody"] or m["env"]
            if tex and (used := sorted({n for n in _MACRO_USE.findall(tex) if n in self.book.macros})):
                raise self.ctx.error(f"book macros {used} left in the math")


_DETAILS = "<details>\n<summary><b>{title}</b></summary>\n\n{body}\n\n</details>"


def _details(title: str, body: str) -> str:
    """A collapsed block; the title is HTML, so its markdown bold becomes plain text."""
    return _DETAILS.format(title=re.sub(r"\*\*(.+?)\*\*", r"\1", title), body=body.strip("\n"))


def _lead(body: str) -> str:
    """A body that can follow a bold title on its line, or else starts a paragraph of its own."""
    if not body or body.startswith("$$") or re.match(r"(\d+[.)]|[-*+>|#]|<)\s", body) or body[0] in "<|#":
        return "\n\n" + body
    return body


def _explicit(content: str) -> tuple[str | None, str]:
    """``text <target>`` -> (text, target); ``target`` -> (None, target)."""
    m = _EXPLICIT.match(content.strip())
    return (m["text"], m["target"].strip()) if m and m["text"] else (None, content.strip())


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == ".." and parts:
            parts.pop()
        elif part not in ("", ".", ".."):
            parts.append(part)
    return "/".join(parts)


def _authors(entry: Any) -> str:
    """The name part of an author-year label: A, A and B, A et al. (three or more)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
    if len(last) >= 3:
        return f"{last[0]} et al."
    return " and ".join(last) or entry.key


def _strip_code_and_math(markdown: str) -> str:
    """The prose of rendered markdown: code blocks, code spans and math blanked out."""
    kept = []
    for block in split_blocks(markdown):
        if isinstance(block, str):
            kept.append(_TOKENS.sub(lambda m: m.group(0) if m["r_name"] else " ", block))
        elif block.name is not None:
            kept.append(block.raw)  # a directive left over: report it
    return "\n".join(kept)


# --------------------------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------------------------

def render(book: Book, source: Path) -> str:
    """The edition of notebook file ``source`` as the JSON text written to disk."""
    nb = nbformat.read(source, as_version=4)
    return nbformat.writes(book.convert(nb, source.resolve()), version=4) + "\n"


def build(root: Path = ROOT, check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) the edition of every notebook of the table of contents.

    Returns the edition files that were written (or that are out of date); with ``check``
    nothing is written. Stale files in the edition folder (a page removed from the book) count
    as out of date and are removed when writing.
    """
    book = Book.load(root)
    changed, wanted = [], set()
    for source in book.notebooks():
        out = root / book.edition_path(source)
        wanted.add(out)
        text = render(book, source)
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            changed.append(out)
            if not check:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
    for stale in sorted((root / EDITION_DIR).rglob("*.ipynb")):
        if stale not in wanted and ".ipynb_checkpoints" not in stale.parts:
            changed.append(stale)
            if not check:
                stale.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="one notebook of the book")
    parser.add_argument("-o", "--output", type=Path, help="where to write its edition")
    parser.add_argument("--check", action="store_true", help="exit 1 if jupyter/ is out of date")
    args = parser.parse_args(argv)
    try:
        if args.source:
            text = render(Book.load(ROOT), args.source)
            (args.output.write_text(text, encoding="utf-8") if args.output else sys.stdout.write(text))
            return 0
        changed = build(ROOT, check=args.check)
    except EditionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    if args.check and changed:
        print("run: python tools/jupyter_edition.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
