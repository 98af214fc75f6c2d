"""Properties of the DCS record parser and writer (issue #14): generated records survive
write → parse unchanged, typed job fields survive their own formatting, and no input makes
the parser raise anything but `DcsError` with a line of the input."""

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivers.dcs import DcsError, Field, Record, TraceBlock, parse, read_job, write
from drivers.dcs.job import EYES, chiral_field, number_text
from drivers.dcs.records import TRACE_LABELS

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None)

# Printable text a value may hold: anything but control characters (and so no line end).
VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
LABEL = st.from_regex(r"[A-Z_][A-Z0-9_]{0,11}", fullmatch=True).filter(
    lambda label: label not in TRACE_LABELS | {"JOB"}
)
FIELD = st.builds(Field, LABEL, VALUE)
JOB = st.builds(Field, st.just("JOB"), VALUE.filter(str.strip))


@st.composite
def trace(draw: st.DrawFn, side: str) -> TraceBlock:
    count = draw(st.integers(1, 25))
    spacing = draw(st.sampled_from(("E", "U", "A")))
    angles = None
    if spacing != "E":
        angles = tuple(draw(st.lists(st.integers(0, 35_999), min_size=count, max_size=count)))
    extra = draw(st.lists(st.builds(Field, st.sampled_from(("ZFMT", "Z")), VALUE), max_size=2))
    return TraceBlock(
        side=side,
        radii=tuple(draw(st.lists(st.integers(0, 99_999), min_size=count, max_size=count))),
        angles=angles,
        spacing=spacing,
        kind=draw(st.sampled_from(("F", "P"))),
        extra=tuple(extra),
    )


@st.composite
def record(draw: st.DrawFn) -> Record:
    """JOB, other labels and at most one trace per side (B: one shape for both), any order."""
    sides = draw(st.sampled_from(((), ("R",), ("L",), ("R", "L"), ("B",))))
    entries: list[Field | TraceBlock] = [draw(JOB), *draw(st.lists(FIELD, max_size=6))]
    entries += [draw(trace(side)) for side in sides]
    return Record(tuple(draw(st.permutations(entries))))


@PROPERTY
@given(st.lists(record(), min_size=1, max_size=3), st.integers(1, 12))
def test_write_then_parse_gives_the_records_back(records: list[Record], wrap: int) -> None:
    text = write(records, wrap=wrap)
    assert parse(text) == records
    assert parse(text.encode()) == records
    assert write(parse(text)) == write(records)  # canonical text is stable


# Both eyes' values as a DCS system writes them: plain decimals, quarter dioptres and so on.
POWER = st.integers(-2000, 2000).map(lambda n: n / 8)
EYE = st.fixed_dictionaries(
    {
        "SPH": POWER,
        "CYL": POWER,
        "AX": st.integers(0, 180),
        "ADD": st.integers(0, 16).map(lambda n: n / 4),
        "IPD": st.integers(200, 400).map(lambda n: n / 10),
    }
)
FIELD_NAMES = {"SPH": "sph", "CYL": "cyl", "AX": "axis", "ADD": "add", "IPD": "mono_pd"}


@PROPERTY
@given(st.tuples(EYE, EYE), st.sets(st.sampled_from(EYES), min_size=1))
def test_chiral_values_survive_write_and_read(
    eyes: tuple[dict[str, float], dict[str, float]], present: set[str]
) -> None:
    """`R;L` values, an eye left empty when it is not ordered."""
    texts = {
        eye: {
            label: (str(int(value)) if label == "AX" else number_text(value, 3))
            if eye in present
            else ""
            for label, value in values.items()
        }
        for eye, values in zip(EYES, eyes, strict=True)
    }
    fields = [chiral_field(label, texts["R"][label], texts["L"][label]) for label in FIELD_NAMES]
    job = read_job(parse(write(Record((Field("JOB", "J1"), *fields))))[0])
    for eye, values in zip(EYES, eyes, strict=True):
        read = job.eye(eye)
        for label, name in FIELD_NAMES.items():
            assert getattr(read, name) == (values[label] if eye in present else None)


# Near-miss input: lines built from the grammar's own pieces reach the deeper checks.
PIECES = st.sampled_from(
    [
        "JOB=J1", "JOB=", "JOB= ", "TRCFMT=1;3;E;R;F", "TRCFMT=1;2;U;B;P", "TRCFMT=2;3;E;R;F",
        "TRCFMT=1;0;E;L;F", "R=1;2;3", "R=1;2", "R=-1;x;3", "A=0;18000", "A=1;2;3", "ZFMT=x",
        "Z=1", "SPH=-1.25;+0.50", "AX=90;181", "_V=1", "lower=1", "NOEQUALS", "", " ", "=",
        "\t", "\x7f", "R=" + ";".join(["1"] * 12),
    ]
)  # fmt: skip
NEAR_MISS = st.lists(PIECES | VALUE, max_size=12).map("\n".join)
NEAR_MISS_BYTES = st.lists(PIECES.map(str.encode) | st.binary(max_size=12), max_size=12).map(
    b"\r\n".join
)


def assert_parses_or_names_a_line(data: str | bytes) -> None:
    lines = (data.count("\n") if isinstance(data, str) else data.count(b"\n")) + 1
    try:
        records = parse(data, source="fuzz.dcs")
    except DcsError as error:
        assert 1 <= error.line <= lines, (error.line, lines)
        assert str(error).startswith(f"fuzz.dcs:{error.line}: ")
        return
    assert records and all(record.job.strip() for record in records)
    for record in records:
        try:
            read_job(record)
        except DcsError as error:  # a bad typed value, named at its line
            assert 1 <= error.line <= lines


@PROPERTY
@given(st.text() | NEAR_MISS)
@example("JOB=J1\nTRCFMT=1;2;E;B;F\nR=1;2\nTRCFMT=1;2;E;R;F\nR=1;2")
@example("JOB=J1\nSPH=1;2;3\nAX=1.5;90\nPRVM=1;\nPRVA=;")
def test_any_text_parses_or_raises_dcs_error(text: str) -> None:
    assert_parses_or_names_a_line(text)


@PROPERTY
@given(st.binary() | NEAR_MISS_BYTES)
@example(b"JOB=J1\r\nNAME=\xff\xfe\r\n")
def test_any_bytes_parse_or_raise_dcs_error(data: bytes) -> None:
    assert_parses_or_names_a_line(data)


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted({"SPH", "CYL", "AX", "ADD", "PRVM", "PRVA", "IPD", "DBL"})),
            st.text(string.digits + "+-.;e x", max_size=12),
        ),
        max_size=8,
    )
)
def test_typed_fields_raise_only_dcs_error(fields: list[tuple[str, str]]) -> None:
    """Whatever `read_job` is given, a value it cannot read is a DcsError at its line."""
    record = Record(
        (Field("JOB", "J1", 1), *(Field(k, v, n) for n, (k, v) in enumerate(fields, 2)))
    )
    try:
        read_job(record)
    except DcsError as error:
        assert 2 <= error.line <= len(fields) + 1
