"""The tolerance engine: judge measured lenses against the ordered Rx under one profile.

How each quantity is judged (a check runs only when both sides carry its fields; absent
fields are skipped, not failed — a job with nothing comparable passes with no checks):
- Powers: the measured lens is first transposed into the ordered lens's cylinder form
  (minus form when the ordered lens is spherical); a reading without `cyl` is spherical.
  "sph" then compares the principal meridian that is of highest absolute power in the
  ordered lens (SPH, or SPH + CYL), with the band chosen by that meridian's power; when
  both ordered meridians are equally strong, the measured lens's stronger one is judged.
  "cyl" compares the cylinders in that form, banded by |ordered cyl|.
- "axis": banded by |ordered cyl| (no check below 0.12 D); differences wrap at 180°.
- With `use_verification_power`, an ordered lens's `verification` powers replace its
  written powers (freeform lenses are verified against compensated power).
- "prism": |measured − ordered| prism vector at the PRP against `prism`; where both PRP
  positions are known (monocular `pd` and `prp_height`) the PRP offset against
  `prp_location_mm` is combined by `prism_rule` ("or": either suffices; "and": both).
- Pair imbalances judge the change from the ordered R/L relation (vertical: R − L, base up
  positive; horizontal: R + L, base out positive). The band comes from the strongest
  ordered power in the vertical (90°) or horizontal (180°) meridian of either lens; above
  `max_power` the PRP height difference (vertical) or binocular PD (horizontal) is judged.
- "fitting_height_pair" judges the change in the R − L height difference.
"""

from collections.abc import Callable

from core.optics.models import (
    EYES,
    Check,
    CheckResult,
    Design,
    Eye,
    EyeRx,
    PairRx,
    Powers,
)
from core.optics.profiles import (
    EPS,
    BandTables,
    Imbalance,
    Profile,
    band_tolerance,
    within,
)
from core.optics.rx import SphCyl, axis_difference, in_form_of, meridian_power

PairValue = Callable[[PairRx], float | None]


def check_pair(ordered: PairRx, measured: PairRx, design: Design, profile: Profile) -> CheckResult:
    """Every applicable check for the lenses present on both sides; pass = all pass."""
    checks: list[Check | None] = []
    targets: dict[Eye, EyeRx] = {}
    for eye in EYES:
        ordered_lens, measured_lens = ordered.lens(eye), measured.lens(eye)
        if ordered_lens is None or measured_lens is None:
            continue
        target, note = _target(ordered_lens, profile)
        targets[eye] = target
        checks += _power_checks(eye, target, measured_lens, design, profile.bands, note)
        checks += [
            _prism_check(eye, ordered_lens, measured_lens, profile),
            _scalar_check(
                eye,
                "fitting_height",
                ordered_lens.fitting_height,
                measured_lens.fitting_height,
                profile.fitting_height_mm,
            ),
            _scalar_check(eye, "ct", ordered_lens.ct, measured_lens.ct, profile.ct_mm),
        ]
    if len(targets) == len(EYES):
        checks += _pair_checks(ordered, measured, targets, profile)
    done = [check for check in checks if check is not None]
    return CheckResult(passed=all(check.passed for check in done), checks=done)


def _target(lens: EyeRx, profile: Profile) -> tuple[EyeRx, str | None]:
    if profile.use_verification_power and lens.verification is not None:
        update = lens.verification.model_dump(exclude_none=True)
        return lens.model_copy(update=update), "verification power"
    return lens, None


def _check(
    eye: Eye | None,
    field: str,
    ordered: float,
    measured: float,
    tolerance: float,
    *,
    deviation: float | None = None,
    passed: bool | None = None,
    note: str | None = None,
) -> Check:
    deviation = abs(measured - ordered) if deviation is None else deviation
    return Check(
        eye=eye,
        field=field,
        # Rounded for output only; the verdict uses the exact values.
        ordered=round(ordered, 4),
        measured=round(measured, 4),
        deviation=round(deviation, 4),
        tolerance=round(tolerance, 4),
        passed=within(deviation, tolerance) if passed is None else passed,
        note=note,
    )


def _scalar_check(
    eye: Eye | None,
    field: str,
    ordered: float | None,
    measured: float | None,
    tolerance: float | None,
    note: str | None = None,
) -> Check | None:
    if ordered is None or measured is None or tolerance is None:
        return None
    return _check(eye, field, ordered, measured, tolerance, note=note)


def _sphcyl(powers: Powers) -> SphCyl | None:
    if powers.sph is None:
        return None
    return SphCyl(powers.sph, powers.cyl or 0.0, powers.axis)


def _power_checks(
    eye: Eye, ordered: Powers, measured: Powers, design: Design, bands: BandTables, note: str | None
) -> list[Check | None]:
    add_tolerance = None if ordered.add is None else band_tolerance(bands.add, ordered.add)
    add_check = _scalar_check(eye, "add", ordered.add, measured.add, add_tolerance, note)
    ordered_rx, measured_rx = _sphcyl(ordered), _sphcyl(measured)
    if ordered_rx is None or measured_rx is None:
        return [add_check]
    measured_rx = in_form_of(measured_rx, ordered_rx)
    meridian = _judged_meridian(ordered_rx, measured_rx)
    ordered_power = _meridians(ordered_rx)[meridian]
    meridian_note = "; ".join(
        filter(None, [note, "judged in the SPH + CYL meridian" if meridian else None])
    )
    checks = [
        _scalar_check(
            eye,
            "sph",
            ordered_power,
            _meridians(measured_rx)[meridian],
            band_tolerance(bands.sph.for_design(design), ordered_power),
            meridian_note or None,
        )
    ]
    if ordered.cyl is not None and measured.cyl is not None:
        checks += _cylinder_checks(eye, ordered_rx, measured_rx, design, bands, note)
    return [*checks, add_check]


def _cylinder_checks(
    eye: Eye, ordered: SphCyl, measured: SphCyl, design: Design, bands: BandTables, note: str | None
) -> list[Check | None]:
    """Cylinder and axis, with `measured` already in the cylinder form of `ordered`."""
    cyl_tolerance = band_tolerance(bands.cyl.for_design(design), ordered.cyl)
    checks = [_scalar_check(eye, "cyl", ordered.cyl, measured.cyl, cyl_tolerance, note)]
    axis_tolerance = band_tolerance(bands.axis, ordered.cyl)
    if ordered.axis is not None and measured.axis is not None and axis_tolerance is not None:
        deviation = axis_difference(ordered.axis, measured.axis)
        checks.append(
            _check(
                eye,
                "axis",
                ordered.axis,
                measured.axis,
                axis_tolerance,
                deviation=deviation,
                note=note,
            )
        )
    return checks


def _meridians(rx: SphCyl) -> tuple[float, float]:
    """Principal powers: along the axis (SPH) and across it (SPH + CYL)."""
    return rx.sph, rx.sph + rx.cyl


def _judged_meridian(ordered: SphCyl, measured: SphCyl) -> int:
    """Index into `_meridians` of the meridian of highest absolute power."""
    first, second = (abs(power) for power in _meridians(ordered))
    if abs(first - second) <= EPS:
        first, second = (abs(power) for power in _meridians(measured))
    return 0 if first >= second else 1


def _prism_check(eye: Eye, ordered: EyeRx, measured: EyeRx, profile: Profile) -> Check | None:
    ordered_prism, measured_prism = ordered.prism(), measured.prism()
    if ordered_prism is None or measured_prism is None:
        return None
    deviation = _length(measured_prism[0] - ordered_prism[0], measured_prism[1] - ordered_prism[1])
    prism_ok = within(deviation, profile.prism)
    passed, note = prism_ok, None
    offset = _prp_offset(ordered, measured)
    if offset is not None:
        location_ok = within(offset, profile.prp_location_mm)
        passed = prism_ok or location_ok if profile.prism_rule == "or" else prism_ok and location_ok
        note = (
            f"PRP {offset:.2f} mm from specified (tolerance {profile.prp_location_mm} mm);"
            f" rule {profile.prism_rule}"
        )
    return _check(
        eye,
        "prism",
        _length(*ordered_prism),
        _length(*measured_prism),
        profile.prism,
        deviation=deviation,
        passed=passed,
        note=note,
    )


def _prp_offset(ordered: EyeRx, measured: EyeRx) -> float | None:
    """Distance (mm) of the measured PRP from the ordered one; None unless both are placed."""
    if (
        ordered.pd is None
        or ordered.prp_height is None
        or measured.pd is None
        or measured.prp_height is None
    ):
        return None
    return _length(measured.pd - ordered.pd, measured.prp_height - ordered.prp_height)


def _length(horizontal: float, vertical: float) -> float:
    return (horizontal**2 + vertical**2) ** 0.5


def _pair_checks(
    ordered: PairRx, measured: PairRx, targets: dict[Eye, EyeRx], profile: Profile
) -> list[Check | None]:
    return [
        _imbalance_check(
            ordered,
            measured,
            _strongest_power(targets, 90),
            profile.vertical_imbalance,
            ("prism_v_imbalance", _vertical_prism_difference),
            ("prp_height_pair", lambda pair: _height_difference(pair, "prp_height")),
        ),
        _imbalance_check(
            ordered,
            measured,
            _strongest_power(targets, 180),
            profile.horizontal_imbalance,
            ("prism_h_imbalance", _net_horizontal_prism),
            ("pd", PairRx.binocular_pd),
        ),
        _scalar_check(
            None,
            "fitting_height_pair",
            _height_difference(ordered, "fitting_height"),
            _height_difference(measured, "fitting_height"),
            profile.fitting_height_pair_mm,
        ),
    ]


def _strongest_power(targets: dict[Eye, EyeRx], meridian: int) -> float | None:
    """Largest |power| in a meridian over both ordered lenses; None if a sphere is missing."""
    lenses = [_sphcyl(lens) for lens in targets.values()]
    if None in lenses:
        return None
    return max(abs(meridian_power(rx, meridian)) for rx in lenses)


def _imbalance_check(
    ordered: PairRx,
    measured: PairRx,
    power: float | None,
    rule: Imbalance,
    prism: tuple[str, PairValue],
    otherwise: tuple[str, PairValue],
) -> Check | None:
    if power is None:
        return None
    low_power = power <= rule.max_power + EPS
    (field, value), tolerance = (prism, rule.prism) if low_power else (otherwise, rule.otherwise_mm)
    note = f"meridian power {power:.2f} D {'≤' if low_power else '>'} {rule.max_power} D"
    return _scalar_check(None, field, value(ordered), value(measured), tolerance, note)


def _prisms(pair: PairRx) -> tuple[tuple[float, float], tuple[float, float]] | None:
    right = pair.R.prism() if pair.R else None
    left = pair.L.prism() if pair.L else None
    return None if right is None or left is None else (right, left)


def _vertical_prism_difference(pair: PairRx) -> float | None:
    """R − L vertical prism: base up before one eye and base down before the other add up."""
    prisms = _prisms(pair)
    return None if prisms is None else prisms[0][1] - prisms[1][1]


def _net_horizontal_prism(pair: PairRx) -> float | None:
    """R + L horizontal prism: base out before both eyes adds up."""
    prisms = _prisms(pair)
    return None if prisms is None else prisms[0][0] + prisms[1][0]


def _height_difference(pair: PairRx, attribute: str) -> float | None:
    right = getattr(pair.R, attribute, None)
    left = getattr(pair.L, attribute, None)
    return None if right is None or left is None else right - left
