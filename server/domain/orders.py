"""Order entry: warnings for unusual but possible orders, the promised date proposed from the
ETA engine, and what the order page offers to choose from.

Refusals are not made here: `jobs.check_order` is the one core that refuses an order, for
`POST /api/jobs`, `POST /api/jobs/check` and the order page alike. A warning never refuses;
it asks a person to look again at a value that is possible but more often a typing error.

Warning thresholds (what a lab sees rarely enough that a second look pays):

| warning | threshold | on field |
| --- | --- | --- |
| sphere | beyond ±10.00 D | `right.sph` / `left.sph` |
| cylinder | beyond ±6.00 D | `*.cyl` |
| add | over +3.50 D | `*.add` |
| prism | over 5 Δ | `*.prism` |
| R/L sphere or cylinder (anisometropia) | differ by more than 3.00 D | `left.sph` / `left.cyl` |
| R/L add | differ by more than 0.50 D | `left.add` |
| R/L mono PD | differ by more than 3 mm | `left.mono_pd` |
| R/L fitting height | differ by more than 2 mm | `left.fitting_height` |

Eyes are compared in minus cylinder, as stored, whatever form they were written in.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.labels import Labels
from server.domain.auth import PersonPrincipal
from server.domain.flags import FloorLoad, floor_load, route_minutes
from server.domain.jobs import (
    Problem,
    lab_catalogue,
    next_job_number,
    sees_one_store,
    select_route,
    stored_eyes,
)
from server.domain.lab_time import lab_zone
from server.labconfig import CatalogueConfig
from server.models import Eye, JobType, Lab, LensDesign, Priority, Role, Route, Store
from server.schemas import JobCreate

HIGH_SPHERE_D = 10.0
HIGH_CYLINDER_D = 6.0
HIGH_ADD_D = 3.5
HIGH_PRISM = 5.0
# (field, largest R/L difference that is unremarkable, unit, what a larger one may be)
PAIR_LIMITS = (
    ("sph", 3.0, "D", "anisometropia"),
    ("cyl", 3.0, "D", "anisometropia"),
    ("add", 0.5, "D", "adds are nearly always equal"),
    ("mono_pd", 3.0, "mm", "check the PD measurement"),
    ("fitting_height", 2.0, "mm", "check the fitting heights"),
)

# The promise rule's working day, in the lab's time zone.
WORKDAY_END = time(17, 0)
WORKDAYS = frozenset(range(5))  # Monday to Friday
SAFETY_MARGIN = timedelta(hours=1)


def order_warnings(order: JobCreate) -> list[Problem]:
    """(field, message) for each unusual value (thresholds in the module docstring)."""
    eyes = stored_eyes(order)
    warnings: list[Problem] = []
    for eye, side in ((Eye.R, "right"), (Eye.L, "left")):
        rx = eyes.get(eye)
        if rx is None:
            continue
        if abs(rx.sph) > HIGH_SPHERE_D:
            warnings.append((f"{side}.sph", f"sphere beyond ±{HIGH_SPHERE_D:.2f} D"))
        if abs(rx.cyl) > HIGH_CYLINDER_D:
            warnings.append((f"{side}.cyl", f"cylinder beyond ±{HIGH_CYLINDER_D:.2f} D"))
        if rx.add is not None and rx.add > HIGH_ADD_D:
            warnings.append((f"{side}.add", f"add over +{HIGH_ADD_D:.2f} D"))
        if rx.prism is not None and rx.prism > HIGH_PRISM:
            warnings.append((f"{side}.prism", f"prism over {HIGH_PRISM:g} Δ"))
    right, left = eyes.get(Eye.R), eyes.get(Eye.L)
    if right is None or left is None:
        return warnings
    for name, limit, unit, why in PAIR_LIMITS:
        pair = getattr(right, name), getattr(left, name)
        if None not in pair and abs(pair[0] - pair[1]) > limit:
            difference = abs(pair[0] - pair[1])
            warnings.append(
                (f"left.{name}", f"R/L differ by {difference:g} {unit} (over {limit:g}): {why}")
            )
    return warnings


def _workday_end(local: datetime) -> datetime:
    """The end of the working day `local` falls in; after hours or on a day off, the next's."""
    day: date = local.date()
    if local.time() > WORKDAY_END:
        day += timedelta(days=1)
    while day.weekday() not in WORKDAYS:
        day += timedelta(days=1)
    return datetime.combine(day, WORKDAY_END, tzinfo=local.tzinfo)


def promise_for(
    route: Route, load: FloorLoad, priority: Priority, now: datetime, zone: ZoneInfo
) -> datetime:
    """The promised date for a new order on `route`:

    1. ready = now + the route as the ETA engine walks it for a job entered now (queue wait
       at each stage from the current floor load, then its learned or standard minutes);
    2. plus SAFETY_MARGIN (1 h), rounded up to the end of that working day (17:00, Monday to
       Friday, in the lab's time zone; after 17:00 or on a weekend, the next working day's);
    3. a regular order gets one more working day (packing, transport, slack); rush none.
    """
    ready = now + timedelta(minutes=route_minutes(route, load)) + SAFETY_MARGIN
    promise = _workday_end(ready.astimezone(zone))
    if priority != Priority.rush:
        promise = _workday_end(promise + timedelta(days=1))
    return promise.astimezone(UTC)


def propose_promise(
    session: Session,
    lab_id: int,
    job_type: JobType,
    design: LensDesign,
    surfaced: bool,
    priority: Priority,
    now: datetime,
) -> datetime:
    """`promise_for` on the route the order would take and the lab's load now (Invalid
    naming `lens_design` when no route takes such an order)."""
    route = select_route(session, lab_id, job_type, design, surfaced)
    return promise_for(route, floor_load(session, lab_id), priority, now, lab_zone(session, lab_id))


@dataclass(frozen=True)
class OrderChoices:
    """What the order page offers: the catalogue, the stores the person may order for."""

    catalogue: CatalogueConfig
    labels: Labels  # what people read for designs, frame types, measurements
    stores: dict[str, str]  # code -> name
    zone: ZoneInfo
    next_job_number: str | None  # proposed to the lab; None for store staff (assigned on submit)


def order_choices(session: Session, principal: PersonPrincipal) -> OrderChoices:
    stores = select(Store).where(Store.lab_id == principal.lab_id).order_by(Store.code)
    if principal.role == Role.store_staff:
        stores = stores.where(Store.id == principal.store_id)
    return OrderChoices(
        catalogue=lab_catalogue(session, principal.lab_id),
        labels=Labels.model_validate(session.get_one(Lab, principal.lab_id).labels or {}),
        stores={store.code: store.name for store in session.scalars(stores)},
        zone=lab_zone(session, principal.lab_id),
        next_job_number=None
        if sees_one_store(principal)
        else next_job_number(session, principal.lab_id),
    )
