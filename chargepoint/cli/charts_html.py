"""A standalone HTML page for reports: inline CSS, inline SVG charts, no script and no external reference, so the file
works offline and can be mailed. Every function escapes the text it is given; ``page`` takes fragments built here or
by ``charts_svg``."""

from __future__ import annotations

from collections.abc import Sequence

from chargepoint.cli.charts_svg import esc

STYLE = (
    "body{font-family:sans-serif;margin:2em auto;max-width:760px;color:#222;padding:0 1em}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    "figure{margin:1em 0}p.note{color:#555;font-size:.9em}"
)


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def paragraph(text: str, css_class: str = "") -> str:
    attribute = f' class="{esc(css_class)}"' if css_class else ""
    return f"<p{attribute}>{esc(text)}</p>"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def page(title: str, fragments: Sequence[str]) -> str:
    """The whole document (well-formed XML too, so a test can parse it with ``xml.etree``)."""
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"/><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"/><style>{STYLE}</style></head>'
            f"<body>{heading(title, 1)}" + "\n".join(fragments) + "</body></html>\n")
