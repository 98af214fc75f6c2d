"""Vision Council DCS ("OMA") job records as files: parse and write them without loss.

    file    = *blank record *(1*blank record) *blank     blank = an empty line (or only spaces)
    record  = 1*(line EOL)                                EOL = CR LF or LF
    line    = label "=" value                             label = [A-Z_][A-Z0-9_]*
    value   = part *(";" part)                            chiral: "right;left", a side may be empty
    trace   = "TRCFMT=1;" N ";" ("E" / "U" / "A") ";" ("R" / "L" / "B") ";" ("F" / "P") EOL
              1*("R=" ints EOL) *("A=" ints EOL) *(("ZFMT=" / "Z=") value EOL)

Jobs in one file are separated by a blank line, and each record holds exactly one JOB: a
second JOB without a blank line before it is refused rather than guessed as a new job,
since labels before it would silently land in the wrong job.

A trace block runs from its TRCFMT to the first label other than R, A, ZFMT or Z. Its R=
lines (any number, concatenated) hold exactly N radii in 0.01 mm; with spacing U or A its
A= lines hold N angles in 0.01° (counter-clockwise from 3 o'clock), with E none. Side B is
one shape for both eyes. ZFMT/Z lines are kept verbatim. Only format 1 (ASCII) is read.

Every other line, vendor `_` labels and labels this module gives no meaning, is kept in
place, so `parse(write(records)) == records`, and `write` of parsed canonical text (CR LF,
one blank line between records, R=/A= lines of `wrap` values) gives the same bytes back.
Anything malformed raises `DcsError` with the 1-based line number.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_LINE_CHARS = 65_536
MAX_RECORDS = 1_000
MAX_POINTS = 10_000
WRAP = 10  # values per R=/A= line when writing, as tracers write them

LABEL = re.compile(r"[A-Z_][A-Z0-9_]*")
_INTEGER = re.compile(r"[+-]?\d{1,9}")
TRACE_LABELS = frozenset({"TRCFMT", "R", "A", "ZFMT", "Z"})
SPACINGS, SIDES, KINDS = ("E", "U", "A"), ("R", "L", "B"), ("F", "P")


class DcsError(ValueError):
    """A malformed file: the 1-based line and what is wrong; `source` names the file."""

    def __init__(self, line: int, message: str, source: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source or 'line'}{':' if self.source else ' '}{self.line}: {self.message}"


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    line: int = field(default=0, compare=False)

    @property
    def parts(self) -> list[str]:
        return self.value.split(";")


@dataclass(frozen=True)
class TraceBlock:
    side: str  # R, L or B (both eyes, one shape)
    radii: tuple[int, ...]  # 0.01 mm
    angles: tuple[int, ...] | None = None  # 0.01°; None: equiangular
    spacing: str = "E"  # E equiangular, U or A explicit angles
    kind: str = "F"  # F frame, P pattern
    extra: tuple[Field, ...] = ()  # ZFMT and Z lines, verbatim
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if (self.angles is None) != (self.spacing == "E"):
            raise ValueError("explicit angles go with spacing U or A, none with E")
        if self.angles is not None and len(self.angles) != len(self.radii):
            raise ValueError(f"{len(self.angles)} angles for {len(self.radii)} radii")


Entry = Field | TraceBlock


@dataclass(frozen=True)
class Record:
    entries: tuple[Entry, ...]
    line: int = field(default=0, compare=False)

    @property
    def job(self) -> str:
        job = self.first("JOB")
        assert job is not None  # parse refuses a record without one
        return job.value

    @property
    def fields(self) -> list[Field]:
        return [entry for entry in self.entries if isinstance(entry, Field)]

    @property
    def traces(self) -> list[TraceBlock]:
        return [entry for entry in self.entries if isinstance(entry, TraceBlock)]

    def first(self, label: str) -> Field | None:
        return next((f for f in self.fields if f.label == label), None)


def parse(data: str | bytes, source: str = "") -> list[Record]:
    """The job records of a DCS file; raises DcsError naming the line of the first fault."""
    try:
        return _parse(data)
    except DcsError as error:
        error.source = source
        raise


def write(records: Record | Iterable[Record], wrap: int = WRAP) -> str:
    """Canonical text: CR LF line ends, one blank line between records."""
    chosen = [records] if isinstance(records, Record) else list(records)
    return "\r\n".join("".join(f"{line}\r\n" for line in _lines(r, wrap)) for r in chosen)


def _parse(data: str | bytes) -> list[Record]:
    if len(data) > MAX_FILE_BYTES:
        raise DcsError(1, f"file larger than {MAX_FILE_BYTES} bytes")
    text = _decode(data) if isinstance(data, bytes) else data
    records: list[Record] = []
    block: list[tuple[int, str]] = []
    for number, line in [*_numbered_lines(text), (0, "")]:  # a blank line ends the last one
        if line.strip():
            block.append((number, line))
        elif block:
            if len(records) == MAX_RECORDS:
                raise DcsError(block[0][0], f"more than {MAX_RECORDS} job records in one file")
            records.append(_record(block))
            block = []
    if not records:
        raise DcsError(1, "no job record (JOB=…) in the file")
    return records


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DcsError(line, "not ASCII or UTF-8 text") from None


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if len(line) > MAX_LINE_CHARS:
            raise DcsError(number, f"line longer than {MAX_LINE_CHARS} characters")
        if any(char < " " or char == "\x7f" for char in line):
            raise DcsError(number, "control character in the line")
        yield number, line


def _record(lines: list[tuple[int, str]]) -> Record:
    entries: list[Entry] = []
    job_line: int | None = None
    trace: _TraceBuilder | None = None
    for number, line in lines:
        label, separator, value = line.partition("=")
        if not separator:
            raise DcsError(number, f"not a LABEL=value line: {line[:40]!r}")
        if not LABEL.fullmatch(label):
            raise DcsError(number, f"label {label[:40]!r} is not [A-Z_][A-Z0-9_]*")
        item = Field(label, value, number)
        if trace is not None and label in TRACE_LABELS - {"TRCFMT"}:
            trace.add(item)
            continue
        if trace is not None:
            entries.append(trace.build())
            trace = None
        if label == "TRCFMT":
            trace = _TraceBuilder(item)
        elif label in ("R", "A"):
            raise DcsError(number, f"{label}= outside a trace block (no TRCFMT before it)")
        else:
            if label == "JOB":
                if job_line is not None:
                    raise DcsError(
                        number,
                        f"a second JOB (first at line {job_line}): separate jobs with a blank line",
                    )
                if not value.strip():
                    raise DcsError(number, "JOB is empty")
                job_line = number
            entries.append(item)
    if trace is not None:
        entries.append(trace.build())
    if job_line is None:
        raise DcsError(lines[0][0], "record without JOB")
    traced: set[str] = set()
    for block in (entry for entry in entries if isinstance(entry, TraceBlock)):
        if traced & {block.side, "B"} or (block.side == "B" and traced):
            raise DcsError(block.line, f"side {block.side} traced again in one record")
        traced.add(block.side)
    return Record(tuple(entries), lines[0][0])


class _TraceBuilder:
    def __init__(self, header: Field) -> None:
        parts = header.parts
        if len(parts) != 5:
            raise DcsError(header.line, "TRCFMT needs 5 parts: format;count;spacing;side;kind")
        fmt, count, spacing, side, kind = parts
        if fmt != "1":
            raise DcsError(header.line, f"TRCFMT format {fmt!r}: only format 1 (ASCII) is read")
        if not count.isdigit() or not 1 <= int(count) <= MAX_POINTS:
            raise DcsError(header.line, f"TRCFMT point count {count!r} is not 1…{MAX_POINTS}")
        for name, text, allowed in (
            ("spacing", spacing, SPACINGS),
            ("side", side, SIDES),
            ("kind", kind, KINDS),
        ):
            if text not in allowed:
                raise DcsError(header.line, f"TRCFMT {name} {text!r} is not {'/'.join(allowed)}")
        self.header, self.count = header, int(count)
        self.spacing, self.side, self.kind = spacing, side, kind
        self.radii: list[int] = []
        self.angles: list[int] = []
        self.extra: list[Field] = []

    def add(self, item: Field) -> None:
        if item.label in ("ZFMT", "Z"):
            self.extra.append(item)
            return
        if item.label == "A" and self.spacing == "E":
            raise DcsError(item.line, "A= angles in an equiangular (E) trace")
        values = self.radii if item.label == "R" else self.angles
        high = 99_999 if item.label == "R" else 35_999
        for position, text in enumerate(item.parts, start=1):
            if not _INTEGER.fullmatch(text) or not 0 <= int(text) <= high:
                raise DcsError(
                    item.line,
                    f"{item.label}: value {position} {text[:20]!r} is not a whole number 0…{high}",
                )
            values.append(int(text))
        if len(values) > self.count:
            raise DcsError(item.line, f"more than the {self.count} values TRCFMT declares")

    def build(self) -> TraceBlock:
        line = self.header.line
        if len(self.radii) != self.count:
            raise DcsError(
                line, f"TRCFMT declares {self.count} radii, the R= lines hold {len(self.radii)}"
            )
        if self.spacing != "E" and len(self.angles) != self.count:
            raise DcsError(
                line,
                f"TRCFMT declares {self.count} angles ({self.spacing}), the A= lines hold "
                f"{len(self.angles)}",
            )
        angles = tuple(self.angles) if self.spacing != "E" else None
        return TraceBlock(
            self.side, tuple(self.radii), angles, self.spacing, self.kind, tuple(self.extra), line
        )


def _lines(record: Record, wrap: int) -> Iterator[str]:
    for entry in record.entries:
        if isinstance(entry, Field):
            yield f"{entry.label}={entry.value}"
            continue
        count = len(entry.radii)
        yield f"TRCFMT=1;{count};{entry.spacing};{entry.side};{entry.kind}"
        for label, values in (("R", entry.radii), ("A", entry.angles or ())):
            for start in range(0, len(values), wrap):
                yield f"{label}={';'.join(map(str, values[start : start + wrap]))}"
        for extra in entry.extra:
            yield f"{extra.label}={extra.value}"
