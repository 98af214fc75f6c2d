"""The job ticket PDF (`render_tickets`, one ticket per page) of `server.tickets.TicketJob`s.
Rendering is pure: no database, no clock. Imported only by `server.tickets.render_tickets`.

The page is 4 × 6 in (101.6 × 152.4 mm), the label every 4-inch thermal printer in a lab takes
(their print width is 104 mm, so A6's 105 mm would be clipped). Both codes are drawn as
vectors, so they stay sharp at any printer resolution:

- Code 128 of the job number across the bottom, for wand and laser scanners (reportlab's
  Code 128, which switches to code set C for digit runs): 0.5 mm modules (4 dots at 203 dpi,
  6 at 300 dpi), narrowed only for a job number too long to fit (below 0.25 mm past about 28
  characters); 10-module quiet zones; 11 mm bars.
- ECC200 DataMatrix of the job number at the top right, for cameras at any angle: the
  smallest square symbol (zxing-cpp's encoder), printed 20 mm square, so 12 × 12 modules for
  "J100123" are 1.67 mm each; a 2 mm quiet zone (at least one module).

To look at a ticket as an image, rasterise the PDF with PDFium (a dev dependency):
`pypdfium2.PdfDocument(pdf)[0].render(scale=dpi / 72).to_numpy()` — `tests/tickets.py` has it.
"""

from collections.abc import Sequence
from io import BytesIO

import numpy as np
import zxingcpp
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import inch, mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from core.trace import Trace, pair_outlines
from server.tickets import TicketEye, TicketJob

PAGE = (4 * inch, 6 * inch)
MARGIN = 4 * mm
CODE128_MODULE = 0.5 * mm
CODE128_QUIET_MODULES = 10
CODE128_HEIGHT = 11 * mm
# The symbol is printed 20 mm square whatever its module count (10 × 10 to 22 × 22 for job
# numbers up to 32 characters): modules of 0.9 to 2 mm, and the 2 mm margin is ≥ 1 module.
MATRIX_SIZE = 20 * mm
MATRIX_QUIET = 2 * mm
SHAPE_HEIGHT = 22 * mm
ROUTE_ROWS = 8  # the longest route of a surfaced job, in one column
ROUTE_STEP = 3.4 * mm
PRISM_BASES = {"in": "BI", "out": "BO", "up": "BU", "down": "BD"}
BOLD, REGULAR = "Helvetica-Bold", "Helvetica"


def render_tickets(jobs: Sequence[TicketJob]) -> bytes:
    """One PDF, one 4 × 6 in page per job, in the order given."""
    if not jobs:
        raise ValueError("no ticket to render")
    buffer = BytesIO()
    # invariant: no creation date or random id, so the same tickets give the same bytes.
    canvas = Canvas(buffer, pagesize=PAGE, invariant=True, pageCompression=1)
    canvas.setTitle("Job tickets")
    canvas.setAuthor("LensTrack")
    for job in jobs:
        _Ticket(canvas, job).draw()
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _latin(text: str) -> str:
    """The standard PDF fonts cover Windows-1252 only: anything else prints as '?'."""
    return text.encode("cp1252", "replace").decode("cp1252")


def _power(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _prism(eye: TicketEye) -> str:
    if eye.prism is None:
        return ""
    base = eye.prism_base or ""
    return f"{eye.prism:g} {PRISM_BASES.get(base, f'{base}°')}"


# The Rx table: header, width in mm, and the cell text of an eye.
RX_COLUMNS = (
    ("", 8, lambda eye: eye.eye),
    ("SPH", 14, lambda eye: _power(eye.sph)),
    ("CYL", 14, lambda eye: _power(eye.cyl) if eye.cyl else "DS"),
    ("AX", 9, lambda eye: "" if eye.axis is None else str(eye.axis)),
    ("ADD", 12, lambda eye: _power(eye.add)),
    ("PRISM", 14, _prism),
    ("PD", 11, lambda eye: _number(eye.mono_pd)),
    ("HT", 11, lambda eye: _number(eye.fitting_height)),
)


class _Ticket:
    """Draws one ticket on the current page, top down; `y` is the cursor (points from the
    page's bottom). The DataMatrix sits top right and the Code 128 at the bottom, at fixed
    places whatever the job carries; the middle flows, and the special instructions take
    the room that is left."""

    def __init__(self, canvas: Canvas, job: TicketJob) -> None:
        self.c = canvas
        self.job = job
        self.width, self.height = PAGE
        self.left, self.right = MARGIN, self.width - MARGIN
        self.y = self.height - MARGIN

    def draw(self) -> None:
        self._band()
        matrix_left, matrix_bottom = self._matrix()
        self._header(matrix_left)
        self.y = min(self.y - 2 * mm, matrix_bottom)
        self._remake()
        self._rx()
        self._lens_and_frame()
        self._shape_and_route()
        self._instructions(self._code128())

    # -- pieces, top to bottom --

    def _band(self) -> None:
        """A black band with RUSH across the top, else the job type over a hairline."""
        c, job = self.c, self.job
        height = 8 * mm
        bottom = self.y - height
        if job.rush:
            c.rect(self.left, bottom, self.right - self.left, height, stroke=0, fill=1)
            c.setFillGray(1)
            c.setFont(BOLD, 18)
            c.drawCentredString(self.width / 2, bottom + 2.2 * mm, "RUSH  ·  RUSH  ·  RUSH")
            c.setFillGray(0)
        else:
            c.setFont(REGULAR, 8)
            c.drawString(self.left, bottom + 2.6 * mm, f"{_latin(job.job_type)} job")
            c.setLineWidth(0.3)
            c.line(self.left, bottom + 1.2 * mm, self.right, bottom + 1.2 * mm)
        self.y = bottom - 1.5 * mm

    def _matrix(self) -> tuple[float, float]:
        """The DataMatrix at the top right, quiet zone included; returns its left and bottom."""
        modules = _datamatrix(self.job.job_number)
        module = MATRIX_SIZE / len(modules)
        x, bottom = self.right - MATRIX_QUIET - MATRIX_SIZE, self.y - MATRIX_QUIET - MATRIX_SIZE
        # One rectangle per run of dark modules in a row: a sharp vector at any resolution.
        for row, dark in enumerate(reversed(modules)):  # the page's y grows upwards
            for start, length in _runs(dark):
                left, y = x + start * module, bottom + row * module
                self.c.rect(left, y, length * module, module, stroke=0, fill=1)
        return x - MATRIX_QUIET, bottom - MATRIX_QUIET

    def _header(self, right: float) -> None:
        """Job number, tray, store and due date, left of the DataMatrix."""
        job = self.job
        number = _latin(job.job_number)
        size = _fit(number, BOLD, 30, right - self.left)
        tray = f"Tray {job.tray_number}" if job.tray_number else "No tray"
        for text, font, points, advance in (
            (number, BOLD, size, 0.75 * size),  # from the top to the first baseline
            (tray, BOLD, 16, 7.5 * mm),
            (f"{job.store_code} · {job.store_name}", BOLD, 10, 5.6 * mm),
            (f"Due {job.due}", BOLD, 10, 4.6 * mm),
        ):
            self.y -= advance
            self.c.setFont(font, points)
            shortened = _shorten(_latin(text), font, points, right - self.left)
            self.c.drawString(self.left, self.y, shortened)

    def _remake(self) -> None:
        job = self.job
        if job.remake_of is None:
            return
        c, height = self.c, 7 * mm
        c.setLineWidth(1.5)
        c.rect(self.left, self.y - height, self.right - self.left, height)
        text = f"REMAKE of {job.remake_of}" + (f" · {job.remake_class}" if job.remake_class else "")
        c.setFont(BOLD, 12)
        c.drawString(self.left + 2 * mm, self.y - height + 2.2 * mm, _latin(text))
        self.y -= height + 1.5 * mm

    def _rx(self) -> None:
        """The Rx table, the right eye's row above the left's."""
        c, x0 = self.c, self.left
        self.y -= 2.5 * mm
        c.setFont(REGULAR, 7)
        x = x0
        for header, width, _ in RX_COLUMNS:
            c.drawCentredString(x + width * mm / 2, self.y, header)
            x += width * mm
        table_right = x
        c.setLineWidth(0.4)
        c.line(x0, self.y - 1.5 * mm, table_right, self.y - 1.5 * mm)
        for eye in self.job.eyes:
            self.y -= 6 * mm
            x = x0
            for index, (_, width, text) in enumerate(RX_COLUMNS):
                c.setFont(BOLD, 13 if index == 0 else 11)
                c.drawCentredString(x + width * mm / 2, self.y, _latin(text(eye)))
                x += width * mm
            c.setLineWidth(0.2)
            c.line(x0, self.y - 2 * mm, table_right, self.y - 2 * mm)
        if not self.job.eyes:
            self.y -= 6 * mm
            c.setFont(REGULAR, 10)
            c.drawString(x0, self.y, "No prescription on the order")
        self.y -= 6 * mm

    def _lens_and_frame(self) -> None:
        job = self.job
        index = f" {job.index:.2f}" if job.index else ""
        lens = f"{job.design} · {job.material}{index} · {'surfaced' if job.surfaced else 'stock'}"
        self._labelled("Lens", lens)
        self._labelled("Treatments", ", ".join(job.treatments) or "none")
        sizes = " · ".join(f"{name} {value:g}" for name, value in job.frame_sizes)
        frame = [job.frame_type, sizes, job.frame_code, job.frame_model]
        self._labelled("Frame", " · ".join(part for part in frame if part) or "—")

    def _labelled(self, label: str, text: str) -> None:
        """A small capital label and up to two lines of bold text after it."""
        c, indent, size = self.c, 20 * mm, 9.5
        c.setFont(REGULAR, 7)
        c.drawString(self.left, self.y, label.upper())
        width = self.right - self.left - indent
        lines = simpleSplit(_latin(text), BOLD, size, width)
        if len(lines) > 2:
            lines = [lines[0], _shorten(" ".join(lines[1:]), BOLD, size, width)]
        c.setFont(BOLD, size)
        for line in lines:
            c.drawString(self.left + indent, self.y, line)
            self.y -= 4.1 * mm
        self.y -= 0.6 * mm

    def _shape_and_route(self) -> None:
        """The lens shapes (when the job has a trace) on the left, the numbered route on the
        right: one column up to ROUTE_ROWS stages, two beyond."""
        c, top = self.c, self.y + 1 * mm
        route_x = self.left + 44 * mm
        stages = list(self.job.route)
        columns = 1 if len(stages) <= ROUTE_ROWS else 2
        if len(stages) > ROUTE_ROWS * columns:  # the last line says how many are left out
            kept = ROUTE_ROWS * columns - 1
            stages = [*stages[:kept], f"+ {len(stages) - kept} more"]
        per_column = -(-len(stages) // columns)
        height = max(SHAPE_HEIGHT, 3.5 * mm + per_column * ROUTE_STEP)
        if self.job.trace is not None:
            _draw_shape(c, self.job.trace, self.left, top - SHAPE_HEIGHT, 40 * mm, SHAPE_HEIGHT)
        else:
            c.setFont(REGULAR, 8)
            c.drawString(self.left, top - 5.5 * mm, "No frame trace")
        c.setFont(REGULAR, 7)
        c.drawString(route_x, top - 2.5 * mm, "ROUTE")
        column_width = (self.right - route_x) / columns
        for number, name in enumerate(stages, start=1):
            column, row = divmod(number - 1, per_column)
            x = route_x + column * column_width
            y = top - 2.5 * mm - (row + 1) * ROUTE_STEP
            c.setFont(REGULAR, 8)
            c.drawRightString(x + 3.5 * mm, y, str(number))
            text, room = _latin(name), column_width - 5.5 * mm
            size = max(7.0, _fit(text, BOLD, 9, room))  # a long stage name in smaller type
            c.setFont(BOLD, size)
            c.drawString(x + 5 * mm, y, _shorten(text, BOLD, size, room))
        self.y = top - height - 3 * mm

    def _code128(self) -> float:
        """The Code 128 across the bottom with the number under it; returns its top."""
        number = self.job.job_number
        quiet = CODE128_QUIET_MODULES
        modules = Code128(value=number, barWidth=1, quiet=False).width + 2 * quiet
        module = min(CODE128_MODULE, (self.right - self.left) / modules)
        code = Code128(
            value=number,
            barWidth=module,
            barHeight=CODE128_HEIGHT,
            lquiet=quiet * module,
            rquiet=quiet * module,
        )
        text_y = MARGIN + 0.5 * mm
        self.c.setFont(BOLD, 11)
        self.c.drawCentredString(self.width / 2, text_y, _latin(number))
        # The patient reference (never a name: the lab has none) beside the number, small.
        patient = f"Patient {self.job.patient_ref}" if self.job.patient_ref else ""
        self.c.setFont(REGULAR, 8)
        side = (self.right - self.left) / 2 - stringWidth(number, BOLD, 11) / 2 - 3 * mm
        self.c.drawString(self.left, text_y, _shorten(_latin(patient), REGULAR, 8, side))
        bars_y = text_y + 4.5 * mm
        code.drawOn(self.c, (self.width - code.width) / 2, bars_y)
        return bars_y + CODE128_HEIGHT + 2 * mm

    def _instructions(self, bottom: float) -> None:
        """Special instructions boxed between the route and the Code 128, shortened with …
        when they need more lines than there is room for."""
        text = " ".join(self.job.special_instructions.split())
        if not text:
            return
        c, size, leading, pad = self.c, 9, 3.9 * mm, 3.4 * mm
        top = self.y
        # One line at least, even on the fullest ticket (it then runs into the route's
        # margin, where a one-column route leaves room): an instruction is never dropped.
        room = max(1, int((top - bottom - pad - 1.5 * mm) // leading))
        width = self.right - self.left - 4 * mm
        lines = simpleSplit(_latin(text), BOLD, size, width)
        if len(lines) > room:
            lines = [*lines[: room - 1], _shorten(" ".join(lines[room - 1 :]), BOLD, size, width)]
        box_height = pad + 1.5 * mm + len(lines) * leading
        c.setLineWidth(0.8)
        c.rect(self.left, top - box_height, self.right - self.left, box_height)
        c.setFont(REGULAR, 7)
        c.drawString(self.left + 2 * mm, top - 2.8 * mm, "SPECIAL INSTRUCTIONS")
        c.setFont(BOLD, size)
        for number, line in enumerate(lines, start=1):
            c.drawString(self.left + 2 * mm, top - pad - number * leading + 1 * mm, line)


def _datamatrix(text: str) -> list[list[bool]]:
    """The smallest square ECC200 symbol of `text`, as rows of modules (True: dark), top row
    first. zxing-cpp encodes it: reportlab's own DataMatrix is always 44 × 44 in C40 and pads
    a text whose C40 length leaves one value over with a NUL, which decoders read back."""
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix, forceSquare=True)
    image = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=1, add_quiet_zones=False))
    return (image < 128).tolist()


def _runs(modules: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules."""
    runs: list[tuple[int, int]] = []
    for index, dark in enumerate(modules):
        if dark and runs and sum(runs[-1]) == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        elif dark:
            runs.append((index, 1))
    return runs


def _fit(text: str, font: str, size: float, width: float) -> float:
    """The largest font size up to `size` at which `text` fits `width`."""
    return min(size, size * width / max(stringWidth(text, font, size), 1))


def _shorten(text: str, font: str, size: float, width: float) -> str:
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _draw_shape(c: Canvas, trace: Trace, x: float, y: float, width: float, height: float) -> None:
    """Both lens shapes as seen from the front, scaled to fit the box, R and L inside them."""
    placed = pair_outlines(trace)
    every = [point for points in placed.values() for point in points]
    min_x, max_x = min(p[0] for p in every), max(p[0] for p in every)
    min_y, max_y = min(p[1] for p in every), max(p[1] for p in every)
    # Points per mm of the shape: as large as fits (a pair is about 130 mm wide, the box less).
    scale = min(width / (max_x - min_x), height / (max_y - min_y))
    origin_x = x + (width - (max_x - min_x) * scale) / 2
    top = y + height
    c.setLineWidth(0.9)
    for eye, points in placed.items():
        path = c.beginPath()
        for index, (px, py) in enumerate(points):
            # pair_outlines has y down; the page has y up.
            sx = origin_x + (px - min_x) * scale
            sy = top - (py - min_y) * scale
            path.moveTo(sx, sy) if index == 0 else path.lineTo(sx, sy)
        path.close()
        c.drawPath(path, stroke=1, fill=0)
        centre_x = (min(px for px, _ in points) + max(px for px, _ in points)) / 2
        centre_y = (min(py for _, py in points) + max(py for _, py in points)) / 2
        c.setFont(BOLD, 12)
        label_y = top - (centre_y - min_y) * scale - 4.2
        c.drawCentredString(origin_x + (centre_x - min_x) * scale, label_y, eye)
