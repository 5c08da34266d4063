"""One document model for every report, and one renderer per output format.

A report builds a `Document` (title, summary, tables of raw values, charts); the renderers
decide how a value looks: grouped numbers and `kr` on screen, HTML and PDF; ungrouped numbers
with the language's decimal mark in CSV (so Norwegian Excel reads them as numbers). JSON is
not rendered from here: each report serialises its own model, with raw values.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collector import texts
from collector.reports import i18n

CellKind = Literal["text", "int", "money", "years", "date", "year", "gib", "gb", "pct", "pct2", "ms", "mbps", "month"]

# Bar colours of the charts; tests look for BAR_COLOUR's pixels in the rendered PDF.
BAR_COLOUR = "#1f5fa8"
ALERT_COLOUR = "#b03a2e"
STRONG_BACKGROUND = "#f6dcd9"


@dataclass(frozen=True)
class Column:
    title: str
    kind: CellKind = "text"

    @property
    def numeric(self) -> bool:
        return self.kind not in ("text", "date", "month")


@dataclass
class Row:
    cells: list[Any]
    group: str | None = None
    strong: bool = False  # shown highlighted (e.g. past due)


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[Row]
    # Rows with a `group` are shown under a heading per group (group_labels[group], else the
    # group itself); CSV puts the group into a first column named group_title instead.
    group_title: str | None = None
    group_labels: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    empty_text: str = ""


@dataclass
class BarSeries:
    label: str
    values: list[float]
    colour: str


@dataclass
class LineSeries:
    label: str
    values: list[float | None]  # one per category; None leaves a gap
    colour: str
    dashed: bool = False


@dataclass
class Chart:
    title: str
    categories: list[str]
    series: list[BarSeries]  # stacked bottom to top
    ylabel: str
    money: bool = True
    lines: list[LineSeries] = field(default_factory=list)  # drawn over the bars
    limit: float | None = None  # a horizontal line in ALERT_COLOUR (a threshold), labelled limit_label
    limit_label: str = ""
    ymax: float | None = None  # the top of the value axis; None: a little above the highest value


@dataclass
class Document:
    lang: str
    title: str
    subtitle: str
    summary: list[str]
    blocks: list[Table | Chart]
    notes: list[str] = field(default_factory=list)
    generated: dt.date = field(default_factory=dt.date.today)
    currency: str = "NOK"

    @property
    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]

    @property
    def charts(self) -> list[Chart]:
        return [b for b in self.blocks if isinstance(b, Chart)]


def cell_text(value: Any, kind: CellKind, lang: str, for_csv: bool = False, currency: str = "NOK") -> str:
    """A raw cell value as people read it (or as a CSV cell)."""
    if value is None or value == "":
        return ""
    group = not for_csv
    if kind == "text":
        return str(value)
    if kind == "date":
        return i18n.date(value, lang)
    if kind == "month":
        return value.strftime("%Y-%m") if for_csv else i18n.month(value, lang)
    if kind == "year":
        return str(int(value))
    if kind == "money":
        return i18n.number(value, lang, 0, group=False) if for_csv else i18n.money(value, lang, currency)
    decimals = {"int": 0, "years": 1, "gib": 1, "gb": 0, "pct": 1, "pct2": 2, "ms": 1, "mbps": 1}[kind]
    return i18n.number(value, lang, decimals, group=group)


def _cells(table: Table, row: Row, lang: str, currency: str, for_csv: bool = False) -> list[str]:
    return [cell_text(v, c.kind, lang, for_csv, currency) for v, c in zip(row.cells, table.columns)]


def _groups(table: Table) -> list[tuple[str | None, list[Row]]]:
    """Consecutive rows of one group, in order."""
    out: list[tuple[str | None, list[Row]]] = []
    for row in table.rows:
        if out and out[-1][0] == row.group:
            out[-1][1].append(row)
        else:
            out.append((row.group, [row]))
    return out


# ----------------------------------------------------------------------------------- text
def render_text(doc: Document) -> str:
    lines = [doc.title, doc.subtitle, ""]
    lines += doc.summary
    for block in doc.blocks:
        if isinstance(block, Chart):
            continue  # the forecast table next to it says the same in a terminal
        lines += ["", block.title, "-" * len(block.title)]
        if not block.rows:
            lines.append(block.empty_text)
            continue
        texts = [_cells(block, r, doc.lang, doc.currency) for r in block.rows]
        widths = [max([len(c.title)] + [len(t[i]) for t in texts]) for i, c in enumerate(block.columns)]

        def line(cells: list[str]) -> str:
            parts = [
                cell.rjust(w) if col.numeric else cell.ljust(w) for cell, w, col in zip(cells, widths, block.columns)
            ]
            return "  ".join(parts).rstrip()

        header = line([c.title for c in block.columns])
        lines += [header, "=" * len(header)]
        index = 0
        for group, rows in _groups(block):
            if group is not None:
                lines.append(f"[{block.group_labels.get(group, group)}]")
            for _ in rows:
                lines.append(line(texts[index]))
                index += 1
        if block.note:
            lines.append(block.note)
    if doc.notes:
        lines.append("")
        lines += [f"* {n}" for n in doc.notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ csv
def render_csv(doc: Document) -> str:
    """Each table as a block: its title, its header, its rows; an empty line between blocks."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=texts.of(doc.lang).csv_delimiter, lineterminator="\r\n")
    for n, table in enumerate(doc.tables):
        if n:
            writer.writerow([])
        writer.writerow([table.title])
        grouped = table.group_title is not None
        writer.writerow(([table.group_title] if grouped else []) + [c.title for c in table.columns])
        for row in table.rows:
            writer.writerow(([row.group or ""] if grouped else []) + _cells(table, row, doc.lang, doc.currency, True))
    return buf.getvalue()


# ---------------------------------------------------------------------------------- chart
def chart_png(chart: Chart, lang: str, currency: str = "NOK", dpi: int = 120) -> bytes:
    """A bar chart, with its lines and limit, as PNG bytes (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7.0, 3.2), dpi=dpi)
    ax = fig.add_subplot()
    # Numeric positions and tick labels: categories of year strings make matplotlib log a warning.
    xs = list(range(len(chart.categories)))
    bottoms = [0.0] * len(chart.categories)
    for series in chart.series:
        ax.bar(xs, series.values, bottom=bottoms, color=series.colour, label=series.label, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, series.values)]
    for x, total in enumerate(bottoms):
        if total > 0:
            label = i18n.money(total, lang, currency) if chart.money else i18n.number(total, lang)
            ax.annotate(label, (x, total), ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    for line in chart.lines:
        ax.plot(xs, [float("nan") if v is None else v for v in line.values], color=line.colour, label=line.label,
                linestyle="--" if line.dashed else "-", marker=None if line.dashed else "o", markersize=3, linewidth=2)
    if chart.limit is not None:
        ax.axhline(chart.limit, color=ALERT_COLOUR, linewidth=2, label=chart.limit_label)
    ax.set_xticks(xs, chart.categories, rotation=45 if len(xs) > 12 else 0, fontsize=8 if len(xs) > 12 else None)
    ax.set_title(chart.title, fontsize=11)
    ax.set_ylabel(chart.ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: i18n.number(v, lang)))
    highest = bottoms + [v for line in chart.lines for v in line.values if v is not None] + [chart.limit or 0.0, 1.0]
    ax.set_ylim(0, chart.ymax if chart.ymax is not None else max(highest) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    if len(chart.series) + len(chart.lines) + (chart.limit is not None) > 1:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


# ----------------------------------------------------------------------------------- html
_CSS = """
body { font-family: "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
.subtitle { color: #555; margin-top: 0; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { padding: 0.25em 0.5em; border-bottom: 1px solid #e3e3e3; text-align: left; vertical-align: top; }
th { background: #f0f3f7; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.group th { background: #e4ebf3; text-align: left; }
tr.strong td { background: STRONG; }
.summary li { margin: 0.2em 0; }
.note, .notes { color: #555; font-size: 0.85em; }
img.chart { max-width: 100%; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; } }
""".replace("STRONG", STRONG_BACKGROUND)


def render_html(doc: Document) -> str:
    """One self-contained HTML file: inline CSS, charts as base64 PNG."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{e(doc.lang)}">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(doc.title)}</h1>",
        f'<p class="subtitle">{e(doc.subtitle)}</p>',
        '<ul class="summary">' + "".join(f"<li>{e(s)}</li>" for s in doc.summary) + "</ul>",
    ]
    for block in doc.blocks:
        if isinstance(block, Chart):
            data = base64.b64encode(chart_png(block, doc.lang, doc.currency)).decode("ascii")
            out.append(f"<h2>{e(block.title)}</h2>")
            out.append(f'<img class="chart" alt="{e(block.title)}" src="data:image/png;base64,{data}">')
            continue
        out.append(f"<h2>{e(block.title)}</h2>")
        if not block.rows:
            out.append(f"<p>{e(block.empty_text)}</p>")
            continue
        out.append("<table>")
        out.append(
            "<thead><tr>"
            + "".join(f'<th{" class=num" if c.numeric else ""}>{e(c.title)}</th>' for c in block.columns)
            + "</tr></thead>"
        )
        out.append("<tbody>")
        for group, rows in _groups(block):
            if group is not None:
                label = block.group_labels.get(group, group)
                out.append(f'<tr class="group"><th colspan="{len(block.columns)}">{e(label)}</th></tr>')
            for row in rows:
                cls = ' class="strong"' if row.strong else ""
                cells = "".join(
                    f'<td{" class=num" if c.numeric else ""}>{e(t)}</td>'
                    for t, c in zip(_cells(block, row, doc.lang, doc.currency), block.columns)
                )
                out.append(f"<tr{cls}>{cells}</tr>")
        out.append("</tbody></table>")
        if block.note:
            out.append(f'<p class="note">{e(block.note)}</p>')
    if doc.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in doc.notes) + "</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ pdf
def render_pdf(doc: Document, path: Path) -> None:
    """The same content as the HTML, on landscape A4 (reportlab platypus)."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as PdfTable
    from reportlab.platypus import TableStyle

    styles = getSampleStyleSheet()
    cell = ParagraphStyle("cell", parent=styles["BodyText"], fontSize=8, leading=9.5)
    cell_num = ParagraphStyle("cellnum", parent=cell, alignment=TA_RIGHT)
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")
    head_num = ParagraphStyle("headnum", parent=head, alignment=TA_RIGHT)
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, textColor=colors.HexColor("#555555"))
    heading = styles["Heading2"]
    e = html.escape  # Paragraph takes a small XML markup: escape <, > and &

    page = landscape(A4)
    frame_width = page[0] - 30 * mm
    story: list[Any] = [
        Paragraph(e(doc.title), styles["Title"]),
        Paragraph(e(doc.subtitle), styles["Normal"]),
        Spacer(1, 4 * mm),
    ]
    story += [Paragraph("\u2022 " + e(s), styles["BodyText"]) for s in doc.summary]
    for block in doc.blocks:
        if isinstance(block, Chart):
            png = chart_png(block, doc.lang, doc.currency, dpi=150)
            width = min(frame_width, 200 * mm)
            story.append(KeepTogether([
                Paragraph(e(block.title), heading),
                Image(io.BytesIO(png), width=width, height=width * 3.2 / 7.0),
            ]))
            continue
        # A heading never ends a page alone: with less room than a few rows left, start a new page.
        story += [CondPageBreak(35 * mm), Paragraph(e(block.title), heading)]
        if not block.rows:
            story.append(Paragraph(e(block.empty_text), styles["BodyText"]))
            continue
        data: list[list[Any]] = [[Paragraph(e(c.title), head_num if c.numeric else head) for c in block.columns]]
        style: list[tuple[Any, ...]] = [
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f3f7")),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d0d0")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]
        for group, rows in _groups(block):
            if group is not None:
                style += [
                    ("SPAN", (0, len(data)), (-1, len(data))),
                    ("BACKGROUND", (0, len(data)), (-1, len(data)), colors.HexColor("#e4ebf3")),
                ]
                data.append([Paragraph(e(block.group_labels.get(group, group)), head)] + [""] * (len(block.columns) - 1))
            for row in rows:
                if row.strong:
                    style.append(("BACKGROUND", (0, len(data)), (-1, len(data)), colors.HexColor(STRONG_BACKGROUND)))
                data.append([
                    Paragraph(e(t), cell_num if c.numeric else cell)
                    for t, c in zip(_cells(block, row, doc.lang, doc.currency), block.columns)
                ])
        texts = [_cells(block, r, doc.lang, doc.currency) for r in block.rows]
        table = PdfTable(data, repeatRows=1, colWidths=_pdf_widths(block, texts, frame_width))
        table.setStyle(TableStyle(style))
        story.append(table)
        if block.note:
            story.append(Paragraph(e(block.note), small))
    if doc.notes:
        story.append(Spacer(1, 4 * mm))
        story += [Paragraph("\u2022 " + e(n), small) for n in doc.notes]

    def footer(canvas: Any, pdf: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawRightString(page[0] - 15 * mm, 8 * mm, f"{doc.title} \u2013 {pdf.page}")
        canvas.restoreState()

    SimpleDocTemplate(
        str(path), pagesize=page, title=doc.title, leftMargin=15 * mm, rightMargin=15 * mm,
        topMargin=15 * mm, bottomMargin=15 * mm,
    ).build(story, onFirstPage=footer, onLaterPages=footer)


def _pdf_widths(table: Table, texts: list[list[str]], total: float) -> list[float]:
    """Numbers and dates get the width of their widest cell (they must not wrap); text columns
    share the rest in proportion to their longest cell, and wrap."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    pad = 14.0  # reportlab's default cell padding (6 pt each side) and a little air
    widths: list[float | None] = []
    wants: list[float] = []
    floors: list[float] = []
    for i, col in enumerate(table.columns):
        cells = [t[i] for t in texts]
        head = max(stringWidth(word, "Helvetica-Bold", 8) for word in col.title.split())
        widest = max([stringWidth(c, "Helvetica", 8) for c in cells] + [head]) + pad
        if col.numeric or col.kind == "date":
            widths.append(widest)
        else:
            widths.append(None)
            wants.append(min(widest, 220.0))
            # Never narrower than the longest word: reportlab would break it mid-word.
            words = [stringWidth(word, "Helvetica", 8) for c in cells for word in c.split()]
            floors.append(min(max(words + [head - pad]) + pad, 120.0))
    rest = max(total - sum(w for w in widths if w is not None), 0.0)
    scale = min(1.0, rest / sum(wants)) if wants else 1.0
    shares = iter(zip(wants, floors))
    out = []
    for w in widths:
        if w is None:
            want, floor = next(shares)
            w = max(want * scale, floor)
        out.append(w)
    return out
