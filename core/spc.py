"""Statistical process control, written once: control limits and Western Electric run rules.

Pure (numbers in, limits and violations out), so the server's charts and alerts and anything
offline judge a series alike. A chart's limits come from a baseline (phase I: the process as it
was when it was believed in control) and are applied to the points after it (phase II), so a
drift cannot pull the limits along with it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise
from statistics import fmean
from typing import Literal

# Individuals chart: X̄ ± E2·MR̄ (E2 = 3/d2, d2 = 1.128 for ranges of two) and UCL_MR = D4·MR̄.
E2 = 2.66
D4_MOVING_RANGE = 3.267
# X̄/R chart constants by subgroup size n (ASTM STP 15D; D3 is 0 below n = 7).
A2 = {2: 1.880, 3: 1.023, 4: 0.729, 5: 0.577, 6: 0.483, 7: 0.419, 8: 0.373, 9: 0.337, 10: 0.308}
D3 = {2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816, 10: 1.777}
SUBGROUP_SIZES = range(2, 11)
RUN_LENGTH = 8  # rule 4: points in a row on one side

Side = Literal["above", "below"]


class Rule(IntEnum):
    beyond_3_sigma = 1  # 1 point beyond 3σ
    two_of_three_beyond_2_sigma = 2  # 2 of 3 beyond 2σ, same side
    four_of_five_beyond_1_sigma = 3  # 4 of 5 beyond 1σ, same side
    eight_on_one_side = 4  # 8 in a row on one side of the centre line

    @property
    def description(self) -> str:
        return RULE_DESCRIPTIONS[self]


RULE_DESCRIPTIONS = {
    Rule.beyond_3_sigma: "1 point beyond 3σ",
    Rule.two_of_three_beyond_2_sigma: "2 of 3 points beyond 2σ on one side",
    Rule.four_of_five_beyond_1_sigma: "4 of 5 points beyond 1σ on one side",
    Rule.eight_on_one_side: f"{RUN_LENGTH} points in a row on one side of the centre line",
}
# (rule, points that must lie beyond, of the last `window`, at `sigmas` σ) for the zone rules.
_ZONE_RULES = (
    (Rule.beyond_3_sigma, 1, 1, 3.0),
    (Rule.two_of_three_beyond_2_sigma, 2, 3, 2.0),
    (Rule.four_of_five_beyond_1_sigma, 4, 5, 1.0),
)


@dataclass(frozen=True)
class Limits:
    """A centre line and the σ its zones are measured in; limits at ±3σ."""

    centre: float
    sigma: float

    @property
    def upper(self) -> float:
        return self.centre + 3 * self.sigma

    @property
    def lower(self) -> float:
        return self.centre - 3 * self.sigma


@dataclass(frozen=True)
class RangeLimits:
    """The spread chart below the location chart: moving ranges or subgroup ranges."""

    centre: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Violation:
    """Point `index` completes a pattern `rule` names, on `side` of the centre line."""

    rule: Rule
    index: int
    side: Side


@dataclass(frozen=True)
class Chart:
    """A location series (individuals or subgroup means) and its spread series, the limits
    from the first `baseline` of them, and the violations among the points after those."""

    values: tuple[float, ...]
    ranges: tuple[float | None, ...]  # None: the first individual has no moving range
    baseline: int
    limits: Limits
    range_limits: RangeLimits
    violations: tuple[Violation, ...]


def moving_ranges(values: Sequence[float]) -> list[float]:
    return [abs(current - previous) for previous, current in pairwise(values)]


def individuals_limits(baseline: Sequence[float]) -> tuple[Limits, RangeLimits]:
    """I-MR limits: X̄ ± 2.66·MR̄ for individuals, 0 … 3.267·MR̄ for moving ranges."""
    if len(baseline) < 2:
        raise ValueError("an individuals chart needs at least 2 baseline points")
    mean_range = fmean(moving_ranges(baseline))
    limits = Limits(fmean(baseline), E2 * mean_range / 3)
    return limits, RangeLimits(mean_range, 0.0, D4_MOVING_RANGE * mean_range)


def subgroup_limits(baseline: Sequence[Sequence[float]]) -> tuple[Limits, RangeLimits]:
    """X̄/R limits: X̿ ± A2·R̄ for subgroup means, D3·R̄ … D4·R̄ for subgroup ranges."""
    size = _subgroup_size(baseline)
    if not baseline:
        raise ValueError("an X̄/R chart needs at least 1 baseline subgroup")
    mean_range = fmean(max(group) - min(group) for group in baseline)
    limits = Limits(fmean(fmean(group) for group in baseline), A2[size] * mean_range / 3)
    return limits, RangeLimits(mean_range, D3[size] * mean_range, D4[size] * mean_range)


def _subgroup_size(subgroups: Sequence[Sequence[float]]) -> int:
    sizes = {len(group) for group in subgroups}
    if len(sizes) > 1:
        raise ValueError(f"subgroups of different sizes {sorted(sizes)}")
    size = sizes.pop() if sizes else 2
    if size not in SUBGROUP_SIZES:
        raise ValueError(f"subgroup size {size} outside 2..10")
    return size


def western_electric(values: Sequence[float], limits: Limits, start: int = 0) -> list[Violation]:
    """Violations of rules 1-4 by the points from `start` on; a rule's window may reach back
    before `start` only as far as `start` (phase I points are never judged or counted).

    A point is reported for a rule when it is itself part of the pattern that it completes;
    with no spread in the baseline (σ = 0) there are no zones to judge by, so none are.
    """
    if limits.sigma <= 0:
        return []
    found: list[Violation] = []
    for index in range(start, len(values)):
        for rule, needed, window, sigmas in _ZONE_RULES:
            side = _zone_side(values[index], limits, sigmas)
            if side is None:
                continue
            recent = values[max(start, index - window + 1) : index + 1]
            if sum(_zone_side(value, limits, sigmas) == side for value in recent) >= needed:
                found.append(Violation(rule, index, side))
        run = values[index - RUN_LENGTH + 1 : index + 1] if index - RUN_LENGTH + 1 >= start else []
        sides = {_centre_side(value, limits.centre) for value in run}
        if len(sides) == 1 and (side := sides.pop()) is not None:
            found.append(Violation(Rule.eight_on_one_side, index, side))
    return found


def _zone_side(value: float, limits: Limits, sigmas: float) -> Side | None:
    if value > limits.centre + sigmas * limits.sigma:
        return "above"
    if value < limits.centre - sigmas * limits.sigma:
        return "below"
    return None


def _centre_side(value: float, centre: float) -> Side | None:
    """A point on the centre line is on neither side: it ends a run."""
    if value > centre:
        return "above"
    if value < centre:
        return "below"
    return None


def individuals_chart(values: Sequence[float], baseline: int) -> Chart:
    """I-MR chart: limits from `values[:baseline]`, rules applied to the points after it."""
    if not 2 <= baseline <= len(values):
        raise ValueError(f"baseline of {baseline} points out of 2..{len(values)}")
    limits, range_limits = individuals_limits(values[:baseline])
    ranges: list[float | None] = [None, *moving_ranges(values)]
    return Chart(
        values=tuple(values),
        ranges=tuple(ranges),
        baseline=baseline,
        limits=limits,
        range_limits=range_limits,
        violations=tuple(western_electric(values, limits, baseline)),
    )


def subgroup_chart(subgroups: Sequence[Sequence[float]], baseline: int) -> Chart:
    """X̄/R chart: limits from the first `baseline` subgroups, rules applied to the means of
    the subgroups after them."""
    if not 1 <= baseline <= len(subgroups):
        raise ValueError(f"baseline of {baseline} subgroups out of 1..{len(subgroups)}")
    limits, range_limits = subgroup_limits(subgroups[:baseline])
    _subgroup_size(subgroups)  # the judged subgroups have the baseline's size too
    means = [fmean(group) for group in subgroups]
    return Chart(
        values=tuple(means),
        ranges=tuple(max(group) - min(group) for group in subgroups),
        baseline=baseline,
        limits=limits,
        range_limits=range_limits,
        violations=tuple(western_electric(means, limits, baseline)),
    )
