"""The SPC engine (issue #16): I-MR and X̄/R limits worked out by hand, each Western Electric
rule on a series made to break it (and only it), and properties over generated series: a
mirrored series breaks the same rules on the other side, a doubled one the same rules at the
same points, and every violation reported is one its rule describes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.spc import (
    RUN_LENGTH,
    Limits,
    Rule,
    Violation,
    individuals_chart,
    individuals_limits,
    subgroup_chart,
    subgroup_limits,
    western_electric,
)

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None)
# Baseline by hand: mean 2.5, moving ranges 2, 1, 2 so MR̄ = 5/3, σ = 2.66·MR̄/3.
BASELINE = [1.0, 3.0, 2.0, 4.0]
SIGMA = 2.66 * (5 / 3) / 3  # 1.4778: 1σ 3.978, 2σ 5.456, 3σ 6.933 above the centre 2.5


def test_individuals_limits_by_hand() -> None:
    limits, ranges = individuals_limits(BASELINE)
    assert limits.centre == pytest.approx(2.5)
    assert limits.upper == pytest.approx(2.5 + 2.66 * 5 / 3)
    assert limits.lower == pytest.approx(2.5 - 2.66 * 5 / 3)
    assert (ranges.centre, ranges.lower) == (pytest.approx(5 / 3), 0.0)
    assert ranges.upper == pytest.approx(3.267 * 5 / 3)


def test_subgroup_limits_by_hand() -> None:
    # Means 2, 2, 3 (X̿ = 7/3), ranges 2, 0, 2 (R̄ = 4/3); n = 2: A2 1.880, D3 0, D4 3.267.
    limits, ranges = subgroup_limits([[1.0, 3.0], [2.0, 2.0], [4.0, 2.0]])
    assert limits.upper == pytest.approx(7 / 3 + 1.880 * 4 / 3)
    assert limits.lower == pytest.approx(7 / 3 - 1.880 * 4 / 3)
    assert (ranges.lower, ranges.upper) == (0.0, pytest.approx(3.267 * 4 / 3))
    # n = 7: the range chart gets a lower limit, D3 = 0.076.
    _limits, ranges = subgroup_limits([[0.0, 1, 2, 3, 4, 5, 6]])
    assert (ranges.lower, ranges.upper) == (pytest.approx(0.076 * 6), pytest.approx(1.924 * 6))


def test_subgroups_must_share_a_size_of_2_to_10() -> None:
    with pytest.raises(ValueError, match="different sizes"):
        subgroup_limits([[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"outside 2\.\.10"):
        subgroup_limits([[1.0] * 11])


@pytest.mark.parametrize(
    ("phase_two", "expected"),
    [
        ([7.0], [Violation(Rule.beyond_3_sigma, 4, "above")]),
        ([-2.0], [Violation(Rule.beyond_3_sigma, 4, "below")]),
        ([5.5, 2.5, 5.6], [Violation(Rule.two_of_three_beyond_2_sigma, 6, "above")]),
        ([4.1, 4.2, 2.0, 4.3, 4.4], [Violation(Rule.four_of_five_beyond_1_sigma, 8, "above")]),
        ([0.9, 0.8, 2.4, 0.7, 0.6], [Violation(Rule.four_of_five_beyond_1_sigma, 8, "below")]),
        ([2.6] * RUN_LENGTH, [Violation(Rule.eight_on_one_side, 11, "above")]),
        ([2.4] * 9, [Violation(Rule.eight_on_one_side, i, "below") for i in (11, 12)]),
        # A point on the centre line ends the run; in-control noise breaks nothing.
        ([2.6] * 4 + [2.5] + [2.6] * 4, []),
        ([2.0, 3.0, 1.5, 3.9, 1.2, 2.5], []),
    ],
)
def test_each_rule_on_a_series_made_to_break_it(
    phase_two: list[float], expected: list[Violation]
) -> None:
    chart = individuals_chart(BASELINE + phase_two, baseline=len(BASELINE))
    assert chart.limits.sigma == pytest.approx(SIGMA)
    assert list(chart.violations) == expected


def test_a_point_beyond_3_sigma_also_counts_towards_the_other_zones() -> None:
    chart = individuals_chart([*BASELINE, 5.5, 7.0], baseline=len(BASELINE))
    assert [(v.rule, v.index) for v in chart.violations] == [
        (Rule.beyond_3_sigma, 5),
        (Rule.two_of_three_beyond_2_sigma, 5),
    ]


def test_the_baseline_is_never_judged_nor_counted() -> None:
    # The baseline itself holds 8 above the centre and a far outlier: phase II starts afresh.
    baseline = [3.0, 3.2] * 4 + [1.0, 1.2] * 4 + [20.0]
    chart = individuals_chart([*baseline, 14.0], baseline=len(baseline))
    assert all(v.index >= len(baseline) for v in chart.violations)
    assert [v.rule for v in chart.violations if v.rule != Rule.beyond_3_sigma] == []


def test_an_x_bar_chart_judges_subgroup_means() -> None:
    baseline = [[1.0, 3.0], [2.0, 2.0], [4.0, 2.0]]  # UCL 4.84
    chart = subgroup_chart([*baseline, [5.0, 5.0]], baseline=3)
    assert chart.values[-1] == 5.0 and chart.ranges[-1] == 0.0
    assert list(chart.violations) == [Violation(Rule.beyond_3_sigma, 3, "above")]


# Properties ---------------------------------------------------------------------------------

# Points beyond, of the last `size`, at `sigmas` σ: the zone rules as the literature words them.
ZONE_RULES = {
    Rule.two_of_three_beyond_2_sigma: (2, 3, 2.0),
    Rule.four_of_five_beyond_1_sigma: (4, 5, 1.0),
}
VALUES = st.lists(st.integers(-50, 50).map(float), min_size=4, max_size=60)


@st.composite
def series(draw: st.DrawFn) -> tuple[list[float], int]:
    values = draw(VALUES)
    return values, draw(st.integers(2, len(values)))


@PROPERTY
@given(series())
def test_a_mirrored_series_breaks_the_same_rules_on_the_other_side(
    drawn: tuple[list[float], int],
) -> None:
    values, baseline = drawn
    chart = individuals_chart(values, baseline)
    mirrored = individuals_chart([-value for value in values], baseline)
    flip = {"above": "below", "below": "above"}
    assert [(v.rule, v.index, flip[v.side]) for v in chart.violations] == [
        (v.rule, v.index, v.side) for v in mirrored.violations
    ]
    assert mirrored.limits.upper == pytest.approx(-chart.limits.lower)


@PROPERTY
@given(series())
def test_a_doubled_series_breaks_the_same_rules_with_doubled_limits(
    drawn: tuple[list[float], int],
) -> None:
    values, baseline = drawn
    chart = individuals_chart(values, baseline)
    doubled = individuals_chart([2 * value for value in values], baseline)
    assert doubled.violations == chart.violations
    assert doubled.limits == Limits(2 * chart.limits.centre, 2 * chart.limits.sigma)
    assert doubled.range_limits.upper == pytest.approx(2 * chart.range_limits.upper)


@PROPERTY
@given(series())
def test_every_violation_is_one_its_rule_describes(drawn: tuple[list[float], int]) -> None:
    values, baseline = drawn
    chart = individuals_chart(values, baseline)
    limits = chart.limits
    assert limits.lower <= limits.centre <= limits.upper
    sign = {"above": 1, "below": -1}

    def beyond(value: float, sigmas: float, side: str) -> bool:
        return sign[side] * (value - limits.centre) > sigmas * limits.sigma

    for v in chart.violations:
        assert v.index >= baseline
        if v.rule == Rule.beyond_3_sigma:
            assert beyond(values[v.index], 3.0, v.side)
        elif v.rule == Rule.eight_on_one_side:
            run = values[v.index - RUN_LENGTH + 1 : v.index + 1]
            assert v.index - RUN_LENGTH + 1 >= baseline
            assert all(beyond(value, 0.0, v.side) for value in run)
        else:
            needed, size, sigmas = ZONE_RULES[v.rule]
            recent = values[max(baseline, v.index - size + 1) : v.index + 1]
            assert beyond(values[v.index], sigmas, v.side)
            assert sum(beyond(value, sigmas, v.side) for value in recent) >= needed
    # Rule 1 misses nothing: every judged point past a limit is reported.
    outside = {
        i for i in range(baseline, len(values)) if not limits.lower <= values[i] <= limits.upper
    }
    reported = {v.index for v in chart.violations if v.rule == Rule.beyond_3_sigma}
    assert reported == (outside if limits.sigma > 0 else set())


@PROPERTY
@given(st.floats(-5, 5, allow_nan=False), st.lists(st.floats(-5, 5), min_size=1, max_size=20))
def test_a_baseline_without_spread_gives_no_zones_to_judge_by(
    level: float, later: list[float]
) -> None:
    chart = individuals_chart([level] * 5 + later, baseline=5)
    assert chart.limits.sigma == 0 and chart.violations == ()
    assert western_electric([level, *later], Limits(level, 0.0)) == []
