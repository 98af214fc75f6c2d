"""Properties of the scanner framer (issue #14): where a serial read cuts the byte stream
never changes the codes, clean messages come out as sent, and no bytes make it raise."""

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanner import ScanFramer, Terminator

PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)
TERMINATORS = st.sampled_from(list(Terminator))
# What a scanner line carries: printable text, AIM identifiers, GS separators, line noise and
# the bytes of every terminator (a lone CR before a CRLF scanner's LF, and so on).
PIECES = st.lists(
    st.binary(max_size=6)
    | st.sampled_from([b"]C0", b"]d2", b"]X9", b"\x1d", b"\r", b"\n", b"\t", b"\r\n", b"\x00"])
    | st.from_regex(rb"[ -~]{1,12}", fullmatch=True),
    max_size=16,
).map(b"".join)


def read(framer: ScanFramer, chunks: list[bytes]) -> list[tuple[str, str | None]]:
    return [(code.text, code.symbology) for chunk in chunks for code in framer.feed(chunk)]


def framer(terminator: Terminator, max_length: int) -> ScanFramer:
    return ScanFramer(source="test", terminator=terminator, max_length=max_length)


@PROPERTY
@given(PIECES, TERMINATORS, st.integers(1, 40), st.data())
def test_any_split_gives_the_codes_of_one_read(
    stream: bytes, terminator: Terminator, max_length: int, data: st.DataObject
) -> None:
    """Over-long messages included: a small `max_length` makes many of them."""
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10), label="cuts"))
    chunks = [
        stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    whole = read(framer(terminator, max_length), [stream])
    assert read(framer(terminator, max_length), chunks) == whole
    assert read(framer(terminator, max_length), [bytes([b]) for b in stream]) == whole
    for text, _symbology in whole:
        assert text and all(" " <= char <= "~" or char == "\x1d" for char in text)


@PROPERTY
@given(
    st.lists(st.from_regex(r"[ -\\^-~\x1d]{1,30}", fullmatch=True), max_size=8),
    TERMINATORS,
    st.data(),
)
def test_clean_messages_come_out_as_sent(
    messages: list[str], terminator: Terminator, data: st.DataObject
) -> None:
    """Printable text without `]` (no AIM identifier) and without the terminator."""
    messages = [m for m in messages if terminator.bytes.decode() not in m]
    stream = b"".join(message.encode() + terminator.bytes for message in messages)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10), label="cuts"))
    chunks = [
        stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    assert read(framer(terminator, 30), chunks) == [(message, None) for message in messages]
