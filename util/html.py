"""HTML pages of image tables (training page and results page), built with dominate.

The structure follows the official pages (h3 headers; table > tr > td > p > a > img, br, p caption; relative
``images/<file>`` paths). Additions: a visible title, ``loading="lazy"`` on images, an optional figure block
(e.g. the loss plot), pagination (``index.html``, ``index_2.html`` ...) for pages with many rows, and a style
sheet that wraps each image row to the window width (8 CycleGAN visuals at 256 px would need ~2,100 px), and a row
(``tr``) per direction when the caller splits an input's images so (``row_sizes``: CycleGAN's A->B and B->A).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import dominate
from dominate.tags import a, br, div, h1, h3, img, meta, p, span, style, table, td, tr

from util.util import atomic_write_text, mkdirs

DEFAULT_PAGE_SIZE = 200
# An image row is still table > tr > td, laid out as a wrapping flex row: cells move to the next line instead of
# running off the window; an image wider than the window shrinks to fit.
# (Every table on these pages is an image row, so the rules need no class: the official markup stays as it is.
# No '>' in the rules: the page writer escapes it inside <style>.)
ROW_CSS = """
table, tbody { display: block; border: 0; }
table tr { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 2px; }
table td { display: block; max-width: 100%; box-sizing: border-box; }
table img, div.figure img { max-width: 100%; height: auto; }
"""
_EXTRA_PAGE = re.compile(r"^index_(\d+)\.html$")

Entry = Tuple[str, Dict]


def _url(relative_path: str) -> str:
    """Quote a relative file path for use in src/href (spaces, '#', '?' in file names); the file name's own bytes
    are quoted, so a name that is not valid UTF-8 still links to its file."""
    return quote(os.fsencode(relative_path.replace(os.sep, "/")), safe="/")


def printable(text: str) -> str:
    """``text`` as valid Unicode for the page: bytes of a file name that are not UTF-8 show as U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        return text.encode("utf-8", "replace").decode("utf-8")


def page_file_name(page_number: int) -> str:
    """Return the file name of page ``page_number`` (1-based): index.html, index_2.html, ..."""
    return "index.html" if page_number == 1 else f"index_{page_number}.html"


class HTML:
    """Collect headers and image rows, then ``save()`` them as one or more HTML pages in ``web_dir``."""

    def __init__(self, web_dir: str, title: str, refresh: int = 0, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        """Create ``web_dir`` and ``web_dir/images``; ``refresh`` > 0 adds a meta refresh of that many seconds."""
        if page_size < 1:
            raise ValueError(f"HTML page_size must be >= 1, got {page_size}")
        self.title = printable(title)
        self.web_dir = os.fspath(web_dir)
        self.img_dir = os.path.join(self.web_dir, "images")
        self.refresh = int(refresh)
        self.page_size = int(page_size)
        self._entries: List[Entry] = []
        mkdirs([self.web_dir, self.img_dir])

    def get_image_dir(self) -> str:
        """Return the folder where the page's images are stored."""
        return self.img_dir

    def add_header(self, text: str) -> None:
        """Add an h3 header (it stays on the same page as the image row that follows it)."""
        self._entries.append(("header", {"text": printable(str(text))}))

    def add_images(self, ims: Sequence[str], txts: Sequence[str], links: Sequence[str], width: int = 400,
                   row_sizes: Optional[Sequence[int]] = None) -> None:
        """Add one table: per image a link to ``images/<link>``, the image ``images/<im>`` and a caption; one row
        (``tr``), or one per entry of ``row_sizes`` (images per row, e.g. ``[3, 3]``: a row per direction)."""
        if not (len(ims) == len(txts) == len(links)):
            raise ValueError(f"add_images needs as many captions and links as images ({len(ims)}, {len(txts)}, "
                             f"{len(links)})")
        sizes = [len(ims)] if row_sizes is None else [int(n) for n in row_sizes]
        if sum(sizes) != len(ims) or any(n < 1 for n in sizes):
            raise ValueError(f"add_images: row_sizes {list(sizes)} do not split {len(ims)} images")
        self._entries.append(("images", {"ims": list(ims), "txts": [printable(t) for t in txts], "links": list(links),
                                         "width": int(width), "rows": sizes}))

    def add_figure(self, src: str, caption: str = "", width: int = 0) -> None:
        """Add a standalone image given relative to ``web_dir`` (e.g. ``loss_plot.png``), with an optional caption.

        ``width``: display width in px (0 = the image's own); a narrower window shrinks it.
        """
        self._entries.append(("figure", {"src": src, "caption": printable(caption), "width": int(width)}))

    def num_pages(self) -> int:
        """Return how many page files ``save()`` writes."""
        return len(self._paginate())

    def _paginate(self) -> List[List[Entry]]:
        """Split the entries into pages of at most ``page_size`` image rows; headers move with their row."""
        pages: List[List[Entry]] = [[]]
        rows = 0
        pending: List[Entry] = []
        for entry in self._entries:
            if entry[0] != "images":
                pending.append(entry)
                continue
            if rows == self.page_size:
                pages.append([])
                rows = 0
            pages[-1].extend(pending)
            pending = []
            pages[-1].append(entry)
            rows += 1
        pages[-1].extend(pending)
        return pages

    def _nav(self, page_number: int, total: int) -> div:
        """Build the prev / page x of n / next navigation bar."""
        bar = div(cls="nav", style="margin: 8px 0;")
        with bar:
            if page_number > 1:
                a("\u2190 prev", href=page_file_name(page_number - 1), cls="prev")
            span(f" page {page_number} of {total} ", style="margin: 0 12px;")
            if page_number < total:
                a("next \u2192", href=page_file_name(page_number + 1), cls="next")
        return bar

    def _render_page(self, entries: List[Entry], page_number: int, total: int) -> str:
        """Render one page to an HTML string."""
        title = self.title if total == 1 else f"{self.title} (page {page_number} of {total})"
        doc = dominate.document(title=title)
        with doc.head:
            meta(name="viewport", content="width=device-width, initial-scale=1")
            style(ROW_CSS)
            if self.refresh > 0:
                meta(http_equiv="refresh", content=str(self.refresh))
        with doc:
            h1(self.title, style="font-size: 1.4em;")
            if total > 1:
                self._nav(page_number, total)
            for kind, data in entries:
                if kind == "header":
                    h3(data["text"])
                elif kind == "figure":
                    with div(cls="figure"):
                        attrs = {"style": "width:%dpx" % data["width"]} if data["width"] > 0 else {}
                        img(src=_url(data["src"]), alt=data["caption"] or data["src"], **attrs)
                        if data["caption"]:
                            p(data["caption"])
                else:
                    self._render_row(data)
            if total > 1:
                self._nav(page_number, total)
        return doc.render()

    @staticmethod
    def _render_row(data: Dict) -> None:
        """Render one official-style image table row into the current dominate context."""
        cells = list(zip(data["ims"], data["txts"], data["links"]))
        t = table(border=1, style="table-layout: fixed;")
        with t:
            start = 0
            for size in data.get("rows", [len(cells)]):
                with tr():
                    for im, txt, link in cells[start:start + size]:
                        with td(style="word-wrap: break-word;", halign="center", valign="top"):
                            with p():
                                with a(href=_url("images/" + link)):
                                    img(style="width:%dpx" % data["width"], src=_url("images/" + im), loading="lazy",
                                        alt=txt)
                                br()
                                p(txt)
                start += size

    def save(self) -> None:
        """Write ``index.html`` (and ``index_N.html`` for further pages) atomically; drop stale extra pages."""
        pages = self._paginate()
        total = len(pages)
        for number, entries in enumerate(pages, start=1):
            atomic_write_text(os.path.join(self.web_dir, page_file_name(number)), self._render_page(entries, number, total))
        for name in os.listdir(self.web_dir):
            match = _EXTRA_PAGE.match(name)
            if match and int(match.group(1)) > total:
                os.remove(os.path.join(self.web_dir, name))
