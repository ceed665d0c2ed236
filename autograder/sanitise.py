"""Make a graded notebook safe to view: the instructor opens its feedback HTML and formgrader.

Student-controlled HTML (outputs, markdown answers) keeps harmless formatting only (bleach); no
script, event handler, SVG, JavaScript output or widget state survives, and no image loads from
anywhere but the notebook itself. The feedback pages also get a Content-Security-Policy that
forbids every script and remote resource, nbconvert's own included.
"""

from __future__ import annotations

import re
from pathlib import Path

import bleach

TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
        "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"}
ATTRIBUTES = {"a": ["href", "title"], "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"],
              "*": ["class"]}
PROTOCOLS = {"http", "https", "mailto"}  # links only: nothing is fetched unless clicked
SAFE_MIME = {"text/plain", "image/png", "image/jpeg", "image/gif"}
CLEANED_MIME = {"text/html", "text/markdown"}
IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?(?!attachment:|data:image/(?:png|jpeg|gif);)[^)]*\)")
REMOTE_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?\s*(https?:|ftp:|//|file:)", re.I)  # a relative one is inert
BLOCKS = re.compile(r"<(script|style)\b.*?(</\1\s*>|$)", re.I | re.S)  # content and all
DANGER = re.compile(r"<\s*/?\s*(script|iframe|frame|object|embed|svg|math|img|image|video|audio|link|"
                    r"meta|base|form|input)\b|\bon\w+\s*=|javascript:", re.I)
ACTIVE_MIME = ("javascript", "svg", "widget", "html", "xml")
CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
       'style-src \'unsafe-inline\'; img-src data:; font-src data:">')


def clean_html(text: str) -> str:
    return bleach.clean(BLOCKS.sub("", text), tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS,
                        strip=True)


def clean_markdown(text: str) -> str:
    """A markdown answer as written, less its HTML tags and its images from elsewhere."""
    return IMAGE.sub(lambda m: f"[image: {m.group(1)}]", clean_html(text))


def sanitise(nb) -> int:
    """Clean a notebook in place; return how many outputs or cells held something active (a
    script, an event handler, a remote image, an SVG, JavaScript): harmless formatting that is
    dropped (pandas' styles) is not counted."""
    changed = 0
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            clean = clean_markdown(cell.source)
            attachments = cell.get("attachments") or {}
            for name, data in list(attachments.items()):
                kept = {k: v for k, v in data.items() if k in SAFE_MIME}
                if kept != data:
                    attachments[name] = kept
                    changed += any(word in k for k in data for word in ACTIVE_MIME)
            active = DANGER.search(cell.source) or REMOTE_IMAGE.search(cell.source)
            changed += clean != cell.source and bool(active)
            cell.source = clean
        elif cell.cell_type == "raw":  # nbconvert writes raw cells into HTML verbatim
            changed += bool(cell.source)
            cell.source = ""
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            for mime in list(data):
                if mime in CLEANED_MIME:
                    text = "".join(data[mime]) if isinstance(data[mime], list) else str(data[mime])
                    clean = clean_html(text) if mime == "text/html" else clean_markdown(text)
                    changed += clean != text and bool(DANGER.search(text) or REMOTE_IMAGE.search(text))
                    data[mime] = clean
                elif mime not in SAFE_MIME:
                    del data[mime]
                    changed += any(word in mime for word in ACTIVE_MIME)
            out.get("metadata", {}).pop("application/vnd.jupyter.widget-view+json", None)
    return changed


def protect_page(path: Path) -> None:
    """Forbid scripts and remote loads in an HTML page (a feedback file) by its own header."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if CSP in text:
        return
    head = re.search(r"<head[^>]*>", text, flags=re.I)
    at = head.end() if head else 0
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text[:at] + CSP + text[at:], encoding="utf-8")
    tmp.replace(path)
