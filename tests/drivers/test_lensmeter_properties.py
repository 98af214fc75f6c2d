"""Properties of the lensmeter parsers, for every format in `CODECS` (issue #14): what an
encoder writes parses back to the same reading, any split of the input into chunks gives the
same results as one feed, and no input raises: a bad frame is a `FrameRejected`."""

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.lensmeter import (
    CODECS,
    EyeReading,
    FrameRejected,
    LensmeterFormat,
    LensmeterReading,
    ParseResult,
)
from tests.drivers.test_lensmeter_parsers import outcome

PROPERTY = settings(max_examples=60, derandomize=True, deadline=None)
FORMATS: list[LensmeterFormat] = sorted(CODECS)


def hundredths(low: int, high: int) -> st.SearchStrategy[float]:
    """Dioptres and prism as devices print them: two decimals."""
    return st.integers(low * 100, high * 100).map(lambda n: n / 100)


@st.composite
def eye_reading(draw: st.DrawFn) -> EyeReading:
    cyl = draw(hundredths(-15, 15))
    prism = draw(st.none() | st.tuples(hundredths(-20, 20), hundredths(-20, 20)))
    return EyeReading(
        sph=draw(hundredths(-30, 30)),
        cyl=cyl,
        # Encoders write a missing axis as 0, which is what a spherical lens reads back.
        axis=draw(st.integers(0, 180)) if cyl else 0,
        add=draw(st.none() | hundredths(0, 5)),
        prism_h=None if prism is None else prism[0],
        prism_v=None if prism is None else prism[1],
    )


@st.composite
def reading(draw: st.DrawFn, format: LensmeterFormat) -> LensmeterReading:
    """Only what the format carries: PD in NIDEK frames, the job in DCS records."""
    eyes = draw(st.sampled_from((("R",), ("L",), ("R", "L"))))
    pd = (
        draw(st.none() | st.integers(200, 900).map(lambda n: n / 10)) if format == "nidek" else None
    )
    job = draw(st.none() | st.from_regex(r"J[0-9A-Z-]{1,10}", fullmatch=True))
    return LensmeterReading(
        **{eye: draw(eye_reading()) for eye in eyes},
        pd=pd,
        job=job if format == "dcs" else None,
        source_format="test",
    )


def parse_in_chunks(format: LensmeterFormat, data: bytes, cuts: list[int]) -> list[ParseResult]:
    parser = CODECS[format].parser()
    results: list[ParseResult] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        results += parser.feed(data[start:end])
    return results + parser.finish()


def cut_points(data: bytes, drawing: st.DataObject) -> list[int]:
    return sorted(drawing.draw(st.sets(st.integers(0, len(data)), max_size=12), label="cuts"))


@PROPERTY
@given(st.sampled_from(FORMATS).flatmap(lambda f: st.tuples(st.just(f), reading(f))), st.data())
def test_encode_then_parse_in_any_chunks_gives_the_reading(
    format_and_reading: tuple[LensmeterFormat, LensmeterReading], data: st.DataObject
) -> None:
    format, original = format_and_reading
    encoded = CODECS[format].encode(original)
    assert outcome(parse_in_chunks(format, encoded, [])) == [original.to_json_dict()]
    assert outcome(parse_in_chunks(format, encoded, cut_points(encoded, data))) == [
        original.to_json_dict()
    ]


# Line noise around and inside frames, and the formats' own control bytes.
NOISE = st.lists(
    st.binary(max_size=8)
    | st.sampled_from([b"\x01", b"\x02", b"\x04", b"\x17", b"\x1c", b"\x1d", b"\x1e", b"\r\n"]),
    max_size=12,
).map(b"".join)


@st.composite
def noisy_stream(draw: st.DrawFn, format: LensmeterFormat) -> bytes:
    """Good frames, pieces of frames and noise, in any order."""
    frames = [CODECS[format].encode(draw(reading(format))) for _ in range(draw(st.integers(0, 3)))]
    pieces = [frame[: draw(st.integers(0, len(frame)))] for frame in frames[:1]]
    return b"".join(draw(st.permutations([*frames, *pieces, draw(NOISE), draw(st.binary())])))


@PROPERTY
@given(
    st.sampled_from(FORMATS).flatmap(lambda f: st.tuples(st.just(f), noisy_stream(f))), st.data()
)
def test_any_bytes_in_any_chunks_never_raise(
    format_and_data: tuple[LensmeterFormat, bytes], data: st.DataObject
) -> None:
    format, stream = format_and_data
    whole = parse_in_chunks(format, stream, [])
    assert all(isinstance(result, LensmeterReading | FrameRejected) for result in whole)
    assert all(result.reason for result in whole if isinstance(result, FrameRejected))
    assert outcome(parse_in_chunks(format, stream, cut_points(stream, data))) == outcome(whole)
