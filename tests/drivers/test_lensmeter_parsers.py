"""Lensmeter parsers: round trips through the encoders, garbage, splits and range checks."""

import logging
from typing import Any

import pytest

from drivers.lensmeter import (
    CODECS,
    DcsParser,
    EyeReading,
    FrameRejected,
    LensmeterFormat,
    LensmeterReading,
    NidekParser,
    ParseResult,
    TomeyParser,
    crc16_xmodem,
    encode_dcs,
    encode_nidek,
)

FORMATS: list[LensmeterFormat] = ["nidek", "tomey", "dcs"]
READINGS = [
    LensmeterReading(
        R=EyeReading(sph=-2.25, cyl=-0.75, axis=180, add=2.0, prism_h=1.5, prism_v=-0.25),
        L=EyeReading(sph=-2.0, cyl=-1.0, axis=5, add=2.0),
        source_format="test",
    ),
    LensmeterReading(R=EyeReading(sph=30.0, cyl=15.0, axis=1, add=5.0), source_format="test"),
    LensmeterReading(L=EyeReading(sph=-30.0, cyl=-15.0, axis=90, add=0.0), source_format="test"),
    LensmeterReading(L=EyeReading(sph=0.0, cyl=0.0, axis=0), source_format="test"),
]


def outcome(results: list[ParseResult]) -> list[dict[str, Any]]:
    return [
        {"error": r.reason} if isinstance(r, FrameRejected) else r.to_json_dict() for r in results
    ]


def parse(format: LensmeterFormat, data: bytes) -> list[dict[str, Any]]:
    parser = CODECS[format].parser()
    return outcome(parser.feed(data) + parser.finish())


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("reading", READINGS)
def test_encoder_round_trip(format: LensmeterFormat, reading: LensmeterReading) -> None:
    assert parse(format, CODECS[format].encode(reading)) == [reading.to_json_dict()]


def test_nidek_carries_pd_and_dcs_carries_job() -> None:
    reading = LensmeterReading(R=READINGS[0].R, pd=63.5, job="J104233", source_format="test")
    assert parse("nidek", encode_nidek(reading))[0]["pd"] == 63.5
    assert parse("dcs", encode_dcs(reading))[0]["job"] == "J104233"
    assert parse("dcs", encode_dcs(reading, framed=False))[0]["job"] == "J104233"


def stream(format: LensmeterFormat) -> bytes:
    """Good frames with each kind of trouble between them."""
    encode = CODECS[format].encode
    good, other = encode(READINGS[0]), encode(READINGS[1])
    corrupt = good.replace(b"2.25", b"2.50", 1)
    return good + b"\x00\xff\x13" + CODECS[format].resync + other + corrupt + good[:25]


@pytest.mark.parametrize("format", FORMATS)
def test_mixed_stream(format: LensmeterFormat) -> None:
    results = parse(format, stream(format))
    assert results[0] == READINGS[0].to_json_dict()
    assert "error" in results[1]  # the noise
    assert results[2] == READINGS[1].to_json_dict()
    if format == "tomey":  # no checksum: a changed digit is a different, valid reading
        assert results[3]["R"]["sph"] == -2.5
    else:
        assert "error" in results[3]
    assert "truncated" in results[4]["error"]
    assert len(results) == 5


@pytest.mark.parametrize("format", FORMATS)
def test_any_split_gives_the_same_result(format: LensmeterFormat) -> None:
    data = stream(format)
    expected = parse(format, data)
    for split in range(1, len(data)):
        parser = CODECS[format].parser()
        results = parser.feed(data[:split]) + parser.feed(data[split:]) + parser.finish()
        assert outcome(results) == expected, f"split at {split}"
    parser = CODECS[format].parser()
    byte_by_byte = [result for byte in data for result in parser.feed(bytes([byte]))]
    assert outcome(byte_by_byte + parser.finish()) == expected


def nidek(*segments: bytes, header: bytes = b"DLM", checksum: bool = True) -> bytes:
    body = b"\x01" + header + b"\x02" + b"".join(s + b"\x17" for s in segments) + b"\x04"
    return body + (f"{sum(body) & 0xFFFF:04X}".encode() if checksum else b"") + b"\r\n"


def dcs(*records: bytes, crc: int | None = None) -> bytes:
    packet = b"\x1c" + b"".join(r + b"\r\n" for r in records) + b"\x1e"
    return packet + f"CRC={crc16_xmodem(packet) if crc is None else crc}\r\n".encode() + b"\x1d"


EYE = b" R+01.00-00.50090"
TOMEY = b"LR +1.00 -0.50 90\r\n"
GARBAGE: list[tuple[LensmeterFormat, bytes, str]] = [
    ("nidek", b"noise\x00\xff", "garbage between frames"),
    ("nidek", nidek(EYE)[:-8] + b"XXXX\r\n", "malformed frame"),
    ("nidek", nidek(EYE).replace(b"090", b"091"), "checksum"),
    ("nidek", nidek(EYE, header=b"DRM"), "not a lensmeter frame"),
    ("nidek", nidek(EYE, b"IE01 no lens"), "device reported error 'IE01 no lens'"),
    ("nidek", nidek(EYE, b"DE"), "device reported error 'DE'"),
    ("nidek", nidek(EYE, b"XX12"), "unknown segment 'XX12'"),
    ("nidek", nidek(EYE, EYE), "given twice"),
    ("nidek", nidek(b" R+1.00-00.50090"), "unknown segment"),
    ("nidek", nidek(EYE, b"DA2024.13.01.10:00"), "bad date"),
    ("nidek", nidek(EYE, b"AL+02.00"), "L: add without a sphere"),
    ("nidek", nidek(EYE, b"AR+02.00", b"A+02.00"), "R.add: given twice"),
    ("nidek", nidek(b" R+01.00-00.50181"), "R.axis"),
    ("nidek", nidek(b" R+40.00-00.50090"), "R.sph"),
    ("nidek", nidek(b" R+01.00-16.00090"), "R.cyl"),
    ("nidek", nidek(EYE, b"AR+05.25"), "R.add"),
    ("nidek", nidek(EYE, b"PD10.0"), "pd"),
    ("nidek", nidek(b"IDNIDEK/LM"), "no eye measured"),
    ("nidek", nidek(EYE + b"\x80"), "non-printable"),
    ("nidek", b"\x01DLM\x02" + b"X" * 2000 + b"\x04\r\n", "no frame end within 1024 bytes"),
    ("tomey", b"\x00\xfe\r\n\r\n", "non-printable"),
    ("tomey", b"LR +1.00 -0.50\r\n\r\n", "malformed line"),
    ("tomey", b"LR +1.00 -0.50 90 7\r\n\r\n", "malformed line"),
    ("tomey", b"LX +1.00 -0.50 90\r\n\r\n", "malformed line"),
    ("tomey", b"hello\r\n\r\n", "malformed line 'hello'"),
    ("tomey", TOMEY + TOMEY + b"\r\n", "given twice"),
    ("tomey", b"LR +1.00 -0.50 181\r\n\r\n", "R.axis"),
    ("tomey", b"LR +40.00 -0.50 90\r\n\r\n", "R.sph"),
    ("tomey", TOMEY + b"AR +9.00\r\n\r\n", "R.add"),
    ("tomey", TOMEY + b"AL +2.00\r\n\r\n", "L: add without a sphere"),
    ("tomey", b"LR +1.00 -0.50 90", "truncated"),
    ("tomey", b"X" * 1100 + b"\r\n\r\n", "no blank line within 1024 bytes"),
    ("dcs", b"\x00\xff\r\n\r\n", "non-printable"),
    ("dcs", b"garbage\r\n\r\n", "not a LABEL=value record"),
    ("dcs", dcs(b"INSSPH=1.00;", crc=1), "CRC 1 != computed"),
    ("dcs", dcs(b"INSSPH=1.00;")[:-9] + b"\x1d", "malformed packet"),
    ("dcs", dcs(b"INSSPH=1.00;", b"INSSPH=1.00;"), "INSSPH given twice"),
    ("dcs", dcs(b"INSSPH=1.00"), "expected 'right;left'"),
    ("dcs", dcs(b"INSCYL=1.00;"), "no INSSPH record"),
    ("dcs", dcs(b"INSSPH=1.00;", b"INSCYL=-0.50;"), "R: Value error, a cylinder needs an axis"),
    ("dcs", dcs(b"INSSPH=nan;"), "not a number"),
    ("dcs", dcs(b"INSSPH=1e1;"), "not a number"),
    ("dcs", dcs(b"INSSPH=1.00;", b"INSAX=90.5;"), "R.axis"),
    ("dcs", dcs(b"INSSPH=1.00;2.00", b"INSADD=;-1.00"), "L.add"),
    ("dcs", dcs(b"INSSPH=;", b"JOB=J1"), "no eye measured"),
    ("dcs", dcs(b"INSSPH=1.00;", b"lower=1"), "not a LABEL=value record"),
    ("dcs", b"\x1cINSSPH=1.00;\r\n", "truncated: input ended inside a frame"),
]


@pytest.mark.parametrize(("format", "data", "reason"), GARBAGE)
def test_garbage_is_rejected_loudly_and_the_next_frame_still_parses(
    format: LensmeterFormat, data: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = CODECS[format].encode(READINGS[0])
    parser = CODECS[format].parser()
    with caplog.at_level(logging.WARNING, logger="drivers.lensmeter"):
        results = outcome(parser.feed(data) + parser.finish())
        assert len(results) == 1, results
        assert reason in results[0]["error"]
        assert "frame rejected" in caplog.text
        assert outcome(parser.feed(good) + parser.finish()) == [READINGS[0].to_json_dict()]


def test_axis_zero_is_180_only_with_a_cylinder() -> None:
    [cylinder] = parse("nidek", nidek(b" R+01.00-00.50000"))
    [sphere] = parse("nidek", nidek(b" R+01.00+00.00000"))
    assert cylinder["R"]["axis"] == 180
    assert sphere["R"]["axis"] == 0


def test_nidek_grammar_allowances() -> None:
    frame = nidek(EYE, b" L+00.50+00.00000", b"A+02.00", b"NR+03.00", b"PD64.0")
    [result] = parse("nidek", frame)
    assert result["R"]["add"] == result["L"]["add"] == 2.0  # "A" applies to both eyes
    assert result["pd"] == 64.0
    [no_checksum] = parse("nidek", nidek(EYE, checksum=False))
    [lower_hex] = parse("nidek", nidek(EYE).lower().replace(b"dlm", b"DLM").replace(b"r+", b"R+"))
    [no_last_etb] = parse("nidek", b"\x01DLM\x02" + EYE + b"\x04\r\n")
    assert (
        no_checksum
        == lower_hex
        == no_last_etb
        == {"R": {"sph": 1.0, "cyl": -0.5, "axis": 90}, "L": None}
    )
    assert parse("nidek", b"\r\n" + nidek(EYE) + b"\r\n") == [no_checksum]  # stray line ends


def test_crc16_xmodem_check_value() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3


def test_dcs_packet_crc_padded_or_not_and_unknown_labels_ignored() -> None:
    records = (b"REQ=LMS", b"INSSPH=1.00;", b"_VENDOR=x;y;z", b"SPH=1.00;1.00")
    packet = dcs(*records)
    crc = crc16_xmodem(packet[: packet.index(b"\x1e") + 1])
    padded = packet.replace(f"CRC={crc}".encode(), f"CRC={crc:05d}".encode())
    no_line_end = packet.replace(b"\r\n\x1d", b"\x1d")
    assert parse("dcs", packet) == parse("dcs", padded) == parse("dcs", no_line_end)
    assert parse("dcs", packet) == [{"R": {"sph": 1.0, "cyl": 0.0}, "L": None}]


def test_unframed_dcs_block_at_end_of_file_without_blank_line() -> None:
    assert parse("dcs", b"JOB=J7\nINSSPH=;-1.25\nINSCYL=;0\n") == [
        {"R": None, "L": {"sph": -1.25, "cyl": 0.0}, "job": "J7"}
    ]


def test_tomey_accepts_bare_lf_and_padding() -> None:
    assert parse("tomey", b"LR  +1.00  -0.50  90\nAR +1.50\n\n") == [
        {"R": {"sph": 1.0, "cyl": -0.5, "axis": 90, "add": 1.5}, "L": None}
    ]


@pytest.mark.parametrize("parser_type", [NidekParser, TomeyParser, DcsParser])
def test_a_fresh_parser_has_nothing_pending(parser_type: type) -> None:
    assert parser_type().finish() == []
