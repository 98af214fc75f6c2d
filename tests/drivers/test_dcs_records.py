"""DCS job records: lossless round trips, typed job fields, and refusals at the right line."""

import pytest

from drivers.dcs import DcsError, Field, Record, TraceBlock, parse, read_job, write
from drivers.dcs.records import MAX_FILE_BYTES, MAX_LINE_CHARS
from tests.drivers.dcs_samples import DEMO_DIR, SAMPLES, sample_texts

# Not canonical: LF line ends, blank lines around, R= lines of uneven length, a one-line trace.
LOOSE = """
JOB=A-1
_ZZ_FIRST=1
SPH=-1.00;+0.25
UNKNOWN=x;;y
TRCFMT=1;8;E;R;F
R=2500;2400;2300
R=2200;2100;2000;2100;2200
ZFMT=1;8;E;R;F
Z=0;1;2;3;4;5;6;7
_ZZ_LAST=2


JOB=A-2
TRCFMT=1;4;U;L;P
R=2000;2100;2200;2300
A=0;9000;18000;27000
"""


def test_parse_write_parse_is_identical_and_canonical_text_comes_back_byte_for_byte() -> None:
    records = parse(LOOSE)
    assert parse(write(records)) == records
    canonical = write(records)
    assert write(parse(canonical.encode())) == canonical
    assert canonical.startswith("JOB=A-1\r\n_ZZ_FIRST=1\r\n")
    assert "\r\n\r\nJOB=A-2\r\n" in canonical


def test_unknown_and_vendor_labels_keep_their_order_and_traces_their_values() -> None:
    first, second = parse(LOOSE)
    assert [f.label for f in first.fields] == ["JOB", "_ZZ_FIRST", "SPH", "UNKNOWN", "_ZZ_LAST"]
    assert first.first("UNKNOWN") == Field("UNKNOWN", "x;;y")
    (trace,) = first.traces
    assert trace.radii == (2500, 2400, 2300, 2200, 2100, 2000, 2100, 2200)
    assert trace.angles is None
    assert [(z.label, z.value) for z in trace.extra] == [
        ("ZFMT", "1;8;E;R;F"),
        ("Z", "0;1;2;3;4;5;6;7"),
    ]
    assert second.traces == [
        TraceBlock("L", (2000, 2100, 2200, 2300), (0, 9000, 18000, 27000), "U", "P")
    ]
    assert (first.job, first.line, second.job, second.line) == ("A-1", 2, "A-2", 14)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_files_round_trip_and_match_the_demo_copies(name: str) -> None:
    text = sample_texts()[name]
    assert parse(text) == SAMPLES[name]
    assert write(parse(text)) == text
    assert (DEMO_DIR / name).read_bytes() == text.encode("ascii"), "regenerate config/demo-dcs"
    for record in SAMPLES[name]:
        assert all(len(trace.radii) == 360 for trace in record.traces)


def test_writer_wraps_radii_ten_to_a_line() -> None:
    record = Record((Field("JOB", "W"), TraceBlock("R", tuple(range(2000, 2025)))))
    lines = write(record).split("\r\n")
    assert lines[1] == "TRCFMT=1;25;E;R;F"
    assert [len(line.split(";")) for line in lines[2:5]] == [10, 10, 5]


def job(*lines: str) -> str:
    return "\n".join(["JOB=X1", *lines]) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (job("TRCFMT=1;5;E;R;F", "R=2500;2500", "R=2500;2500", "SPH=0;0"), 2, "declares 5 radii"),
        (job("TRCFMT=1;3;E;R;F", "R=2500;2500;2500;2500"), 3, "more than the 3 values"),
        (job("TRCFMT=1;3;E;R;F", "R=2500;25x0;2500"), 3, "value 2 '25x0'"),
        (job("TRCFMT=1;3;E;R;F", "R=2500;2500;"), 3, "value 3 ''"),
        (job("TRCFMT=1;2;U;R;F", "R=2500;2500", "A=0"), 2, "declares 2 angles"),
        (job("TRCFMT=1;2;E;R;F", "R=2500;2500", "A=0;18000"), 4, "equiangular"),
        (job("TRCFMT=2;360;E;R;F"), 2, "only format 1"),
        (job("TRCFMT=1;1;E;B;F", "R=2500", "TRCFMT=1;1;E;L;F", "R=2500"), 4, "side L traced again"),
        (job("TRCFMT=1;1;E;R;F", "R=2500", "TRCFMT=1;1;E;R;F", "R=2500"), 4, "side R traced again"),
        (job("TRCFMT=1;360;E;X;F"), 2, "side 'X'"),
        (job("SPH=1.00;1.00", "R=2500"), 3, "outside a trace block"),
        (job("SPH=1.00;1.00", "this is not a record"), 3, "not a LABEL=value line"),
        (job("sph=1.00;1.00"), 2, "label 'sph'"),
        (job("SPH=1.00;1.00", "JOB=X2"), 3, "a second JOB (first at line 1)"),
        ("SPH=1.00;1.00\nCYL=0;0\n", 1, "record without JOB"),
        ("\n\n", 1, "no job record"),
        ("JOB=A\n\nSPH=1;1\n", 3, "record without JOB"),
        (job("TINT=a\x07b"), 2, "control character"),
        (b"JOB=X1\nLNAM=\xff\xfe\n", 2, "not ASCII or UTF-8"),
        (job("LNAM=" + "x" * MAX_LINE_CHARS), 2, "line longer than"),
        ("JOB=X1\n" + "Z" * MAX_FILE_BYTES, 1, "file larger than"),
    ],
)
def test_malformed_files_are_refused_at_their_line(
    text: str | bytes, line: int, message: str
) -> None:
    with pytest.raises(DcsError) as raised:
        parse(text, "orders.dcs")
    assert raised.value.line == line, raised.value
    assert message in raised.value.message
    assert str(raised.value).startswith(f"orders.dcs:{line}: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (job("SPH=-1.00;abc"), 2, "SPH: 'abc' is not a number"),
        (job("SPH=1e2;0"), 2, "not a number"),
        (job("SPH=-1.00"), 2, "expected 'right;left'"),
        (job("AX=90.5;0"), 2, "not a whole degree"),
        (job("AX=181;0"), 2, "not a whole degree"),
        (job("PRVM=1.00;", "PRVA=;"), 2, "PRVM for R without its PRVA"),
        (job("SPH=0;0", "SPH=1;1"), 3, "SPH given twice (first at line 2)"),
    ],
)
def test_job_fields_refuse_bad_values_at_their_line(text: str, line: int, message: str) -> None:
    (record,) = parse(text)
    with pytest.raises(DcsError) as raised:
        read_job(record)
    assert (raised.value.line, message in raised.value.message) == (line, True), raised.value


def test_job_fields_are_typed_per_eye_with_prism_bases_named_when_they_can_be() -> None:
    (record,) = parse(
        job(
            "SPH=-2.25;+0.50",
            "CYL=-0.75;",
            "AX=0;",
            "ADD=;2.00",
            "PRVM=1.5;2",
            "PRVA=0;0",
            "IPD=31.5;32",
            "SEGHT=18;18.5",
            "LIND=1.6",
            "HBOX=52",
            "DBL=17",
            "_LT_STORE=NORTH",
            "_OTHER=kept",
        )
    )
    fields = read_job(record)
    assert (fields.right.sph, fields.right.cyl, fields.right.axis) == (-2.25, -0.75, 0)
    assert (fields.left.sph, fields.left.cyl, fields.left.add) == (0.5, None, 2.0)
    assert (fields.right.prism_base, fields.left.prism_base) == ("in", "out")
    assert (fields.right.mono_pd, fields.left.seg_height) == (31.5, 18.5)
    assert (fields.right.lens_index, fields.left.lens_index) == (1.6, 1.6)
    assert (fields.left.hbox, fields.dbl) == (52.0, 17.0)
    assert fields.vendor == {"STORE": "NORTH"}
    assert fields.lines["PRVA"] == 7


@pytest.mark.parametrize(
    ("angles", "right", "left"),
    [
        ("0;0", "in", "out"),
        ("180;180", "out", "in"),
        ("90;270", "up", "down"),
        ("45;359.6", "45", "0"),
    ],
)
def test_prism_angles_become_base_directions_per_eye(angles: str, right: str, left: str) -> None:
    (record,) = parse(job("PRVM=1;1", f"PRVA={angles}"))
    fields = read_job(record)
    assert (fields.right.prism_base, fields.left.prism_base) == (right, left)
