"""Tolerance engine against the Z80.1-2015 tables in config/tolerances.toml.

Expected tolerances are the published figures (docs: "ANSI Z80.1-2015 tolerances"), so a
wrong band edge or table entry fails here.
"""

from typing import Any

import pytest

from core.optics import Check, CheckResult, PairRx, Profile, check_pair, load_profiles
from core.optics.rx import SphCyl, axis_difference, normalize_axis, transpose

PROFILES = load_profiles()
Z80 = PROFILES.profile("z80.1-2015")


def judge(
    ordered: dict[str, Any],
    measured: dict[str, Any],
    design: str = "SV",
    profile: Profile = Z80,
) -> CheckResult:
    return check_pair(
        PairRx.model_validate(ordered), PairRx.model_validate(measured), design, profile
    )


def right_lens(ordered: dict[str, Any], measured: dict[str, Any], **kwargs: Any) -> CheckResult:
    return judge({"R": ordered}, {"R": measured}, **kwargs)


def only(result: CheckResult, field: str, eye: str | None = "R") -> Check:
    [check] = [c for c in result.checks if c.field == field and c.eye == eye]
    return check


def fields(result: CheckResult) -> set[str]:
    return {check.field for check in result.checks}


# (design, ordered sphere, deviation, tolerance from the table, passes)
SPHERE_BANDS = [
    ("SV", -6.50, 0.13, 0.13, True),
    ("SV", -6.50, 0.14, 0.13, False),
    ("SV", 6.50, -0.13, 0.13, True),
    ("SV", 6.50, -0.14, 0.13, False),
    ("SV", -6.75, 0.135, 0.135, True),  # beyond 6.50: 2 % of 6.75
    ("SV", -6.75, 0.14, 0.135, False),
    ("MF", 10.00, 0.20, 0.20, True),
    ("MF", 10.00, 0.21, 0.20, False),
    ("SV", 0.00, 0.13, 0.13, True),
    ("SV", 0.00, -0.14, 0.13, False),
    ("PAL", 2.00, 0.16, 0.16, True),
    ("PAL", -8.00, 0.16, 0.16, True),
    ("PAL", -8.00, 0.17, 0.16, False),
    ("PAL", 8.25, 0.165, 0.165, True),  # beyond 8.00: 2 % of 8.25
    ("PAL", 8.25, 0.17, 0.165, False),
]


@pytest.mark.parametrize(("design", "sph", "deviation", "tolerance", "passes"), SPHERE_BANDS)
def test_sphere_band_edges(
    design: str, sph: float, deviation: float, tolerance: float, passes: bool
) -> None:
    result = right_lens({"sph": sph}, {"sph": sph + deviation}, design=design)
    check = only(result, "sph")
    assert check.tolerance == pytest.approx(tolerance)
    assert check.passed is passes
    assert result.passed is passes


# (design, ordered cylinder, deviation, tolerance from the table, passes)
CYLINDER_BANDS = [
    ("SV", -2.00, 0.13, 0.13, True),
    ("SV", -2.00, 0.14, 0.13, False),
    ("SV", -2.25, 0.15, 0.15, True),
    ("SV", -2.25, 0.16, 0.15, False),
    ("MF", -4.50, 0.15, 0.15, True),
    ("MF", -4.50, -0.16, 0.15, False),
    ("SV", -4.75, 0.19, 0.19, True),  # beyond 4.50: 4 % of 4.75
    ("SV", -4.75, 0.20, 0.19, False),
    ("PAL", -2.00, 0.16, 0.16, True),
    ("PAL", -2.00, 0.17, 0.16, False),
    ("PAL", -2.25, 0.18, 0.18, True),
    ("PAL", -3.50, 0.18, 0.18, True),
    ("PAL", -3.50, 0.19, 0.18, False),
    ("PAL", -3.75, 0.1875, 0.1875, True),  # beyond 3.50: 5 % of 3.75
    ("PAL", -3.75, 0.19, 0.1875, False),
]


@pytest.mark.parametrize(("design", "cyl", "deviation", "tolerance", "passes"), CYLINDER_BANDS)
def test_cylinder_band_edges(
    design: str, cyl: float, deviation: float, tolerance: float, passes: bool
) -> None:
    ordered = {"sph": -1.00, "cyl": cyl, "axis": 90}
    result = right_lens(ordered, {**ordered, "cyl": cyl + deviation}, design=design)
    check = only(result, "cyl")
    assert check.tolerance == pytest.approx(tolerance)
    assert check.passed is passes


# (ordered cylinder, axis error in degrees, tolerance from the table, passes)
AXIS_BANDS = [
    (-0.12, 14, 14, True),
    (-0.12, 15, 14, False),
    (-0.25, 14, 14, True),
    (-0.25, 15, 14, False),
    (-0.37, 7, 7, True),
    (-0.37, 8, 7, False),
    (-0.50, 7, 7, True),
    (-0.50, 8, 7, False),
    (-0.62, 5, 5, True),
    (-0.75, 5, 5, True),
    (-0.75, 6, 5, False),
    (-0.87, 3, 3, True),
    (-0.87, 4, 3, False),
    (-1.50, 3, 3, True),
    (-1.50, 4, 3, False),
    (-1.62, 2, 2, True),
    (-1.62, 3, 2, False),
    (+1.62, 3, 2, False),
]


@pytest.mark.parametrize(("cyl", "error", "tolerance", "passes"), AXIS_BANDS)
def test_axis_band_edges(cyl: float, error: int, tolerance: int, passes: bool) -> None:
    ordered = {"sph": -1.00, "cyl": cyl, "axis": 90}
    check = only(right_lens(ordered, {**ordered, "axis": 90 + error}), "axis")
    assert (check.deviation, check.tolerance, check.passed) == (error, tolerance, passes)


@pytest.mark.parametrize("cyl", [-0.11, -0.06, 0.0])
def test_no_axis_check_below_012(cyl: float) -> None:
    ordered = {"sph": -1.00, "cyl": cyl, "axis": 90}
    result = right_lens(ordered, {**ordered, "axis": 10})
    assert "axis" not in fields(result)
    assert result.passed


@pytest.mark.parametrize(
    ("ordered_axis", "measured_axis", "difference", "passes"),
    [
        (179, 2, 3, True),
        (2, 179, 3, True),
        (179, 3, 4, False),
        (180, 1, 1, True),
        (1, 178, 3, True),
    ],
)
def test_axis_difference_wraps_at_180(
    ordered_axis: int, measured_axis: int, difference: int, passes: bool
) -> None:
    ordered = {"sph": -1.00, "cyl": -1.00, "axis": ordered_axis}
    check = only(right_lens(ordered, {**ordered, "axis": measured_axis}), "axis")
    assert (check.deviation, check.passed) == (difference, passes)


def test_axis_arithmetic() -> None:
    assert axis_difference(179, 2) == 3
    assert axis_difference(90, 90) == 0
    assert axis_difference(1, 91) == 90
    assert [normalize_axis(a) for a in (0, 90, 180, 181, 270)] == [180, 90, 180, 1, 90]
    assert transpose(SphCyl(-2.00, -1.00, 180)) == SphCyl(-3.00, 1.00, 90)
    assert transpose(SphCyl(1.00, 2.00, 135)) == SphCyl(3.00, -2.00, 45)


@pytest.mark.parametrize(
    ("ordered", "measured"),
    [
        ({"sph": -2.00, "cyl": -1.00, "axis": 180}, {"sph": -3.00, "cyl": 1.00, "axis": 90}),
        ({"sph": 1.00, "cyl": 2.00, "axis": 45}, {"sph": 3.00, "cyl": -2.00, "axis": 135}),
        ({"sph": 0.50, "cyl": -0.75, "axis": 100}, {"sph": -0.25, "cyl": 0.75, "axis": 10}),
    ],
)
def test_transposed_reading_compares_equal(
    ordered: dict[str, Any], measured: dict[str, Any]
) -> None:
    result = right_lens(ordered, measured)
    assert fields(result) == {"sph", "cyl", "axis"}
    assert all(check.deviation == 0 for check in result.checks)
    assert result.passed


def test_transposition_does_not_hide_a_wrong_lens() -> None:
    # −2.00 +1.00 × 90 is −1.00 −1.00 × 180, not the ordered −2.00 −1.00 × 180.
    ordered = {"sph": -2.00, "cyl": -1.00, "axis": 180}
    result = right_lens(ordered, {"sph": -2.00, "cyl": 1.00, "axis": 90})
    assert only(result, "sph").deviation == pytest.approx(1.00)
    assert not result.passed


def test_transposed_axis_error_is_judged() -> None:
    ordered = {"sph": -2.00, "cyl": -1.00, "axis": 180}
    assert only(right_lens(ordered, {"sph": -3.00, "cyl": 1.00, "axis": 93}), "axis").passed
    assert not only(right_lens(ordered, {"sph": -3.00, "cyl": 1.00, "axis": 94}), "axis").passed


def test_sphere_is_judged_in_the_meridian_of_highest_power() -> None:
    # −6.00 −1.00: the strongest meridian is −7.00, beyond 6.50, so ±2 % = 0.14 applies
    # (±0.13 would apply to the −6.00 sphere alone).
    ordered = {"sph": -6.00, "cyl": -1.00, "axis": 180}
    check = only(right_lens(ordered, {**ordered, "sph": -6.14}), "sph")
    assert (check.ordered, check.measured) == (-7.00, -7.14)
    assert check.tolerance == pytest.approx(0.14)
    assert check.passed
    # In plus form the same lens's strongest meridian is its SPH: judged the same way.
    plus = {"sph": -7.00, "cyl": 1.00, "axis": 90}
    check = only(right_lens(plus, {**plus, "sph": -7.15}), "sph")
    assert (check.ordered, check.tolerance, check.passed) == (-7.00, 0.14, False)


def test_spherical_order_judges_the_reading_s_strongest_meridian() -> None:
    check = only(right_lens({"sph": -3.00}, {"sph": -3.00, "cyl": -0.14, "axis": 90}), "sph")
    assert (check.measured, check.passed) == (-3.14, False)


@pytest.mark.parametrize(
    ("add", "deviation", "tolerance", "passes"),
    [
        (4.00, 0.12, 0.12, True),
        (4.00, 0.13, 0.12, False),
        (1.00, -0.12, 0.12, True),
        (4.25, 0.18, 0.18, True),
        (4.25, -0.19, 0.18, False),
    ],
)
def test_add_bands(add: float, deviation: float, tolerance: float, passes: bool) -> None:
    result = right_lens(
        {"sph": 1.00, "add": add}, {"sph": 1.00, "add": add + deviation}, design="MF"
    )
    check = only(result, "add")
    assert (check.tolerance, check.passed) == (pytest.approx(tolerance), passes)


def test_absent_fields_are_skipped_not_failed() -> None:
    result = right_lens(
        {"sph": -1.00, "cyl": -0.50, "axis": 90, "add": 2.00, "ct": 2.0, "prism_v": 1.0},
        {"sph": -1.00, "cyl": -0.50, "axis": 90},
    )
    assert fields(result) == {"sph", "cyl", "axis"}
    assert result.passed
    assert judge({"R": {"sph": -1.00}}, {"L": {"sph": -9.00}}).checks == []


def test_one_failing_check_fails_the_job() -> None:
    result = judge(
        {"R": {"sph": -1.00}, "L": {"sph": -1.00}},
        {"R": {"sph": -1.00}, "L": {"sph": -1.25}},
    )
    assert [check.passed for check in result.checks] == [True, False]
    assert not result.passed


# ---- prism at the PRP: OR/AND profile setting ----

PLACED = {"sph": -1.00, "prism_h": 0.0, "prism_v": 0.0, "pd": 32.0, "prp_height": 20.0}


@pytest.mark.parametrize(
    ("prism_v", "prp_height", "passes_or", "passes_and"),
    [
        (0.33, 20.9, True, True),  # prism and position in tolerance
        (0.50, 20.5, True, False),  # prism out, PRP 0.5 mm off
        (0.20, 21.5, True, False),  # prism in, PRP 1.5 mm off
        (0.50, 21.5, False, False),
    ],
)
def test_prism_rule_or_and(
    prism_v: float, prp_height: float, passes_or: bool, passes_and: bool
) -> None:
    measured = {**PLACED, "prism_v": prism_v, "prp_height": prp_height}
    assert only(right_lens(PLACED, measured), "prism").passed is passes_or
    strict_reading = PROFILES.profile("z80.1-2015-and")
    assert only(right_lens(PLACED, measured, profile=strict_reading), "prism").passed is passes_and


def test_prism_without_prp_positions_is_judged_on_prism_alone() -> None:
    ordered = {"sph": -1.00, "prism_h": 2.0}
    check = only(right_lens(ordered, {"sph": -1.00, "prism_h": 2.2, "prism_v": 0.3}), "prism")
    assert check.deviation == pytest.approx(0.3606, abs=1e-4)  # vector error
    assert not check.passed


@pytest.mark.parametrize(
    ("eye", "base", "components"),
    [
        ("R", "out", (2.0, 0.0)),
        ("R", "in", (-2.0, 0.0)),
        ("R", 0, (-2.0, 0.0)),  # 0° is nasal for the right eye
        ("L", 0, (2.0, 0.0)),  # and temporal for the left
        ("L", 90, (0.0, 2.0)),
        ("R", 270, (0.0, -2.0)),
        ("L", "down", (0.0, -2.0)),
    ],
)
def test_prism_and_base_convert_to_components(
    eye: str, base: str | int, components: tuple[float, float]
) -> None:
    pair = PairRx.model_validate({eye: {"sph": 0.0, "prism": 2.0, "base": base}})
    lens = pair.lens(eye)
    assert lens is not None and lens.prism() == pytest.approx(components)


# ---- mounted pair ----


def pair(
    right: dict[str, Any], left: dict[str, Any], lens: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {"R": {**lens, **right}, "L": {**lens, **left}, **extra}


NO_PRISM = {"prism_h": 0.0, "prism_v": 0.0}


@pytest.mark.parametrize(
    ("lens", "right_v", "left_v", "passes"),
    [
        ({"sph": -3.375}, 0.33, 0.0, True),
        ({"sph": -3.375}, 0.34, 0.0, False),
        ({"sph": 3.375}, 0.2, -0.2, False),  # base up R and base down L add up
        ({"sph": 3.375}, 0.3, 0.3, True),  # base up both: no imbalance
        ({"sph": -2.00, "cyl": -2.00, "axis": 90}, 0.33, 0.0, True),  # vertical meridian −2.00
    ],
)
def test_vertical_imbalance_in_prism(
    lens: dict[str, Any], right_v: float, left_v: float, passes: bool
) -> None:
    ordered = pair(NO_PRISM, NO_PRISM, lens)
    measured = pair({**NO_PRISM, "prism_v": right_v}, {**NO_PRISM, "prism_v": left_v}, lens)
    check = only(judge(ordered, measured), "prism_v_imbalance", eye=None)
    assert (check.tolerance, check.passed) == (0.33, passes)


@pytest.mark.parametrize(
    ("lens", "right_height", "passes"),
    [
        ({"sph": -3.50}, 21.0, True),
        ({"sph": -3.50}, 21.1, False),
        ({"sph": -2.00, "cyl": -2.00, "axis": 180}, 21.1, False),  # vertical meridian −4.00
    ],
)
def test_vertical_imbalance_above_3375_judges_prp_heights(
    lens: dict[str, Any], right_height: float, passes: bool
) -> None:
    ordered = pair({"prp_height": 20.0}, {"prp_height": 20.0}, {**lens, **NO_PRISM})
    measured = pair({"prp_height": right_height}, {"prp_height": 20.0}, {**lens, **NO_PRISM})
    result = judge(ordered, measured)
    assert "prism_v_imbalance" not in fields(result)
    check = only(result, "prp_height_pair", eye=None)
    assert (check.tolerance, check.passed) == (1.0, passes)


@pytest.mark.parametrize(
    ("sph", "right_h", "left_h", "passes"),
    [
        (2.75, 0.40, 0.27, True),  # base out both: 0.67
        (2.75, 0.40, 0.28, False),
        (-2.75, 0.50, -0.50, True),  # base out R, base in L cancel
        (-1.00, -0.40, -0.30, False),  # base in both: 0.70
    ],
)
def test_horizontal_imbalance_in_prism(
    sph: float, right_h: float, left_h: float, passes: bool
) -> None:
    lens = {"sph": sph, **NO_PRISM}
    measured = pair({"prism_h": right_h}, {"prism_h": left_h}, lens)
    check = only(judge(pair({}, {}, lens), measured), "prism_h_imbalance", eye=None)
    assert (check.tolerance, check.passed) == (0.67, passes)


def with_pds(pds: float | tuple[float, float]) -> dict[str, Any]:
    """A −3.00 pair (beyond 2.75 D) with a binocular PD or monocular (R, L) PDs."""
    lens = {"sph": -3.00, **NO_PRISM}
    if isinstance(pds, tuple):
        return pair({"pd": pds[0]}, {"pd": pds[1]}, lens)
    return pair({}, {}, lens, pd=pds)


@pytest.mark.parametrize(
    ("ordered", "measured", "passes"),
    [(64.0, 66.5, True), (64.0, 61.4, False), ((32.0, 32.0), (33.5, 33.5), False)],
)
def test_horizontal_imbalance_above_275_judges_pd(
    ordered: float | tuple[float, float], measured: float | tuple[float, float], passes: bool
) -> None:
    result = judge(with_pds(ordered), with_pds(measured))
    assert "prism_h_imbalance" not in fields(result)
    check = only(result, "pd", eye=None)
    assert (check.tolerance, check.passed) == (2.5, passes)


def test_fitting_heights_each_and_pair() -> None:
    lens = {"sph": 1.00, "add": 2.00}
    ordered = pair({"fitting_height": 18.0}, {"fitting_height": 18.0}, lens)
    measured = pair({"fitting_height": 18.6}, {"fitting_height": 17.5}, lens)
    result = judge(ordered, measured, design="PAL")
    assert only(result, "fitting_height", "R").passed and only(result, "fitting_height", "L").passed
    pair_check = only(result, "fitting_height_pair", eye=None)
    assert (pair_check.deviation, pair_check.passed) == (1.1, False)
    assert not only(
        judge(ordered, pair({"fitting_height": 19.1}, {"fitting_height": 18.0}, lens)),
        "fitting_height",
    ).passed
    # An ordered difference between the eyes is intended, not an error.
    uneven = pair({"fitting_height": 18.0}, {"fitting_height": 19.0}, lens)
    assert only(judge(uneven, uneven), "fitting_height_pair", eye=None).passed


@pytest.mark.parametrize(("measured", "passes"), [(2.3, True), (1.7, True), (2.31, False)])
def test_centre_thickness(measured: float, passes: bool) -> None:
    check = only(right_lens({"sph": 1.00, "ct": 2.0}, {"sph": 1.00, "ct": measured}), "ct")
    assert (check.tolerance, check.passed) == (0.3, passes)


# ---- profiles ----


@pytest.mark.parametrize(("measured", "passes"), [(-2.06, True), (-1.94, True), (-2.07, False)])
def test_store_profile_is_stricter(measured: float, passes: bool) -> None:
    strict = PROFILES.profile("store-strict")
    assert (
        only(right_lens({"sph": -2.00}, {"sph": measured}, profile=strict), "sph").passed is passes
    )
    assert only(right_lens({"sph": -2.00}, {"sph": -2.12}), "sph").passed


def test_store_profile_inherits_the_rest() -> None:
    strict = PROFILES.profile("store-strict")
    assert strict.bands.axis == Z80.bands.axis
    assert strict.bands.cyl.pal[0].tol == 0.06
    assert strict.prism_rule == "and" and Z80.prism_rule == "or"


FREEFORM = {
    "sph": -2.00,
    "cyl": -1.00,
    "axis": 90,
    "verification": {"sph": -2.37, "cyl": -0.75, "axis": 90},
}


def test_freeform_is_judged_by_verification_power() -> None:
    measured = {"sph": -2.37, "cyl": -0.75, "axis": 90}
    result = right_lens(FREEFORM, measured, design="PAL")
    assert result.passed
    assert only(result, "sph").note == "verification power; judged in the SPH + CYL meridian"
    written = Z80.model_copy(update={"use_verification_power": False})
    assert not right_lens(FREEFORM, measured, design="PAL", profile=written).passed
