"""The sans-I/O scanner framer and the debouncer."""

import logging
from pathlib import Path

import pytest

from drivers.scanner import Debouncer, ScanFramer, Terminator, symbology_name

FIXTURES = Path(__file__).parent / "fixtures" / "scanner"
SESSION = (FIXTURES / "session_crlf.bin").read_bytes()
SESSION_CODES = [
    ("J104233", "Code 128"),
    ("12345", "Code 39"),
    ("010123456789012815\x1d10ABC", "GS1 DataMatrix"),
    ("https://lab.example/j/104233", "QR Code"),
    ("4006381333931", "EAN-13"),
    ("ODD", "AIM ]X9"),
    ("NOAIM", None),
    ("J104233", "Code 128"),
]


def texts(framer: ScanFramer, data: bytes) -> list[tuple[str, str | None]]:
    return [(code.text, code.symbology) for code in framer.feed(data)]


def test_recorded_session() -> None:
    framer = ScanFramer(source="test", terminator=Terminator.CRLF)
    assert texts(framer, SESSION) == SESSION_CODES


@pytest.mark.parametrize("split", range(1, len(SESSION)))
def test_any_split_gives_the_same_codes(split: int) -> None:
    framer = ScanFramer(source="test", terminator=Terminator.CRLF)
    assert texts(framer, SESSION[:split]) + texts(framer, SESSION[split:]) == SESSION_CODES


def test_byte_by_byte_never_emits_a_partial_code() -> None:
    framer = ScanFramer(source="test", terminator=Terminator.CR)
    emitted = [texts(framer, bytes([byte])) for byte in b"]C0J1234\r"]
    assert emitted[:-1] == [[]] * 8
    assert emitted[-1] == [("J1234", "Code 128")]


@pytest.mark.parametrize(
    ("terminator", "data"),
    [
        (Terminator.CR, b"J1\rJ2\r\n"),  # an LF after CR is line noise for a CR scanner
        (Terminator.LF, b"J1\nJ2\r\n"),
        (Terminator.CRLF, b"J1\r\nJ2\r\n"),
        (Terminator.TAB, b"J1\tJ2\t"),
    ],
)
def test_terminators(terminator: Terminator, data: bytes) -> None:
    framer = ScanFramer(source="test", terminator=terminator)
    assert texts(framer, data) == [("J1", None), ("J2", None)]


def test_prefix_and_suffix_are_stripped_around_the_aim_id() -> None:
    framer = ScanFramer(source="test", prefix="<<", suffix=">>")
    assert texts(framer, b"<<]C1(01)123>>\r") == [("(01)123", "GS1-128")]


@pytest.mark.parametrize(
    ("noise", "expected"),
    [
        (b"\x00J\x001\x00", "J1"),
        (b"\xffJ1\xfe", "J1"),
        (b"\x1b\x07J1", "J1"),
        (b"J\x801", "J1"),
    ],
)
def test_line_noise_is_dropped(noise: bytes, expected: str) -> None:
    assert texts(ScanFramer(source="test"), noise + b"\r") == [(expected, None)]


def test_overflow_is_discarded_with_its_tail(caplog: pytest.LogCaptureFixture) -> None:
    framer = ScanFramer(source="test", max_length=16)
    with caplog.at_level(logging.WARNING, logger="drivers.scanner.framing"):
        assert framer.feed(b"X" * 20) == []
    assert "discarded 20 bytes" in caplog.text
    # the tail of the over-long message does not come out as a code of its own
    assert texts(framer, b"TAIL\rJ1\r") == [("J1", None)]


def test_overflow_keeps_a_split_crlf_terminator() -> None:
    framer = ScanFramer(source="test", terminator=Terminator.CRLF, max_length=8)
    framer.feed(b"X" * 12 + b"\r")
    assert texts(framer, b"\nJ1\r\n") == [("J1", None)]


@pytest.mark.parametrize("terminator", list(Terminator))
def test_an_over_long_message_is_dropped_however_it_was_read(terminator: Terminator) -> None:
    stream = b"X" * 9 + terminator.bytes + b"J1" + terminator.bytes
    one_read = texts(ScanFramer(source="test", terminator=terminator, max_length=8), stream)
    framer = ScanFramer(source="test", terminator=terminator, max_length=8)
    byte_by_byte = [code for byte in stream for code in texts(framer, bytes([byte]))]
    assert one_read == byte_by_byte == [("J1", None)]


def test_reset_drops_a_partial_code() -> None:
    framer = ScanFramer(source="test")
    framer.feed(b"J12")
    framer.reset()
    assert texts(framer, b"34\r") == [("34", None)]


@pytest.mark.parametrize(
    ("identifier", "name"),
    [("C0", "Code 128"), ("C1", "GS1-128"), ("A0", "Code 39"), ("E0", "EAN-13"),
     ("d1", "DataMatrix"), ("d2", "GS1 DataMatrix"), ("Q1", "QR Code"), ("Z0", "AIM ]Z0")],
)  # fmt: skip
def test_symbology_names(identifier: str, name: str) -> None:
    assert symbology_name(identifier) == name


def test_debouncer_reports_a_repeat_once_per_window() -> None:
    debouncer = Debouncer(1.0)
    assert debouncer.accept("J1", 0.0)
    assert not debouncer.accept("J1", 0.5)
    assert debouncer.accept("J2", 0.6)
    assert not debouncer.accept("J1", 0.99)
    assert debouncer.accept("J1", 1.0)
    assert not debouncer.accept("J1", 1.5)


def test_zero_window_reports_everything() -> None:
    debouncer = Debouncer(0.0)
    assert debouncer.accept("J1", 0.0)
    assert debouncer.accept("J1", 0.0)
