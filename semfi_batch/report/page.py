"""The pieces every report page is made of: escaping and number formats, sections, tables, pictures and plots
as data: URIs, and the page itself (its style and the script a browser test reads)."""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from semfi_batch.errors import SemfiError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHEET_THUMB_WIDTH = 200  # width of a picture in a contact sheet (px)


class ReportError(SemfiError):
    """The report's input is neither a run folder nor an eval file, or is unreadable."""

    exit_code = 2


def new_figure(**kw) -> Figure:
    # matplotlib is imported when a plot is drawn, not when a run that writes no plot starts.
    from matplotlib.figure import Figure

    return Figure(**kw)


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def jpeg_uri(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ReportError("cannot encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def figure_html(plot_id: str, title: str, png: bytes) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    return (
        f"<figure class='plot-box'><img class='plot' data-plot='{esc(plot_id)}' src='{uri}' alt='{esc(title)}'>"
        f"<figcaption>{esc(title)}</figcaption></figure>"
    )


def esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def fmt(value, digits: int, unit: str = "") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.{digits}f}{unit}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def section(section_id: str, title: str, content: str) -> str:
    return f"<section id='{section_id}'><h2>{esc(title)}</h2>{content}</section>"


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    return f"<table class='facts'>{cells}</table>"


def html_table(head: Sequence[str], rows: Sequence[Sequence], cls: str = "", marked: set[int] | None = None) -> str:
    """An HTML table; rows whose index is in `marked` get class 'best'."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        mark = " class='best'" if marked and i in marked else ""
        body.append(f"<tr{mark}>" + "".join(f"<td>{esc('' if v is None else v)}</td>" for v in row) + "</tr>")
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def img_cell(uri: str | None, caption: str, kind: str, *, lazy: bool = False) -> str:
    """A captioned picture of a strip, or a 'not available' box of the same shape. `lazy`: a full-size file
    the browser loads when it scrolls into view, shown at the thumbnails' width."""
    if uri is None:
        picture, kind = "<div class='none'>not available</div>", f"{kind} missing"
    elif lazy:
        picture = f"<img src='{esc(uri)}' alt='{esc(caption)}' loading='lazy' width='{SHEET_THUMB_WIDTH}'>"
    else:
        picture = f"<img src='{uri}' alt='{esc(caption)}'>"
    return f"<figure class='{kind}'>{picture}<figcaption>{esc(caption)}</figcaption></figure>"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1d2330;background:#fff;padding:0 16px}
h1{font-size:24px;margin:0}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
h3{font-size:14px;margin:0 0 2px}.sub{color:#5d6678;margin:2px 0 8px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 10px;border-bottom:1px solid #e6e9ef;text-align:left;
vertical-align:top}thead th{background:#f3f5f9}table.facts th{font-weight:600;color:#3b4254}
tr.best td{background:#eaf6ea;font-weight:600}table.failures td:last-child{color:#a3271f;font-family:monospace}
figure{margin:0}.plot-box{margin:10px 0 18px}.plot{max-width:100%;border:1px solid #e6e9ef}
.plot-box figcaption{color:#5d6678}.sheet{margin:14px 0;padding:10px;border:1px solid #e6e9ef;border-radius:6px}
.strip{display:flex;gap:6px;flex-wrap:wrap}.strip figure{text-align:center;font-size:12px;color:#3b4254}
.strip img{display:block;max-width:200px;border:2px solid #cfd6e2}.strip .key img{border-color:#7a8699}
.strip .truth img{border-color:#4aa564}.strip.before{margin-top:4px}.strip .gen img{border-color:#3b7dd8}
.none{width:160px;height:90px;display:flex;align-items:center;justify-content:center;background:#f3f5f9;color:#8a93a5}
"""


# Counts the pictures that decoded; a headless browser test reads the attributes from the DOM.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
});
"""


def page_html(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_SCRIPT}</script></body></html>"
    )
