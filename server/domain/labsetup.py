"""Apply the lab configuration file to the database (idempotent: run it again after edits)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import forget_memos
from server.labconfig import LabConfig
from server.models import (
    Lab,
    ProductionLine,
    ReasonCode,
    Route,
    RouteStep,
    Stage,
    Station,
    Store,
)

LabScoped = ProductionLine | Stage | Route | Station | Store


def _by_code(
    session: Session, model: type[LabScoped], lab_id: int, attribute: str = "code"
) -> dict[str, Any]:
    rows = session.scalars(select(model).where(model.lab_id == lab_id)).all()
    return {getattr(row, attribute): row for row in rows}


def apply_lab_config(session: Session, config: LabConfig) -> Lab:
    """Create or update the lab, its lines, stages, routes, reason codes, stores and stations.

    Nothing is deleted: events and jobs keep referring to stages and routes that a later
    config no longer lists.
    """
    lab = session.scalar(select(Lab).where(Lab.code == config.lab.code))
    if lab is None:
        lab = Lab(code=config.lab.code, name=config.lab.name)
        session.add(lab)
        session.flush()
    lab.name = config.lab.name
    lab.timezone = config.lab.timezone
    lab.shifts = [shift.model_dump(mode="json") for shift in config.shifts]
    lab.breakage_costs = config.breakage_costs.model_dump(mode="json")
    lab.labels = config.labels.model_dump(mode="json")
    lab.catalogue = config.catalogue.model_dump(mode="json")
    lab.aftersales = config.aftersales.model_dump(mode="json")
    lab.kpi_targets = config.kpi_targets.model_dump(mode="json")
    lines = _apply_lines(session, config, lab.id)
    stages = _apply_stages(session, config, lab.id)
    _apply_routes(session, config, lab.id, stages)
    _apply_reasons(session, config, lab.id, stages)
    _apply_stores(session, config, lab.id)
    _apply_stations(session, config, lab.id, stages, lines)
    session.flush()
    forget_memos(session)
    return lab


def _apply_lines(session: Session, config: LabConfig, lab_id: int) -> dict[str, ProductionLine]:
    lines = _by_code(session, ProductionLine, lab_id)
    for line_config in config.lines:
        line = lines.get(line_config.code) or ProductionLine(lab_id=lab_id, code=line_config.code)
        line.name = line_config.name
        lines[line_config.code] = line
        session.add(line)
    return lines


def _apply_stages(session: Session, config: LabConfig, lab_id: int) -> dict[str, Stage]:
    stages = _by_code(session, Stage, lab_id)
    for position, stage_config in enumerate(config.stages, start=1):
        stage = stages.get(stage_config.code) or Stage(lab_id=lab_id, code=stage_config.code)
        stage.name = stage_config.name
        stage.position = position
        stage.stalled_after_minutes = stage_config.stalled_after_minutes
        stage.capacity = stage_config.capacity
        stage.inspection = stage_config.inspection
        stage.carriers = stage_config.carriers
        stages[stage_config.code] = stage
        session.add(stage)
    session.flush()
    return stages


def _apply_routes(
    session: Session, config: LabConfig, lab_id: int, stages: dict[str, Stage]
) -> None:
    routes = _by_code(session, Route, lab_id)
    for route_config in config.routes:
        route = routes.get(route_config.code) or Route(lab_id=lab_id, code=route_config.code)
        route.name = route_config.name
        route.job_types = [str(t) for t in route_config.job_types]
        route.designs = [str(d) for d in route_config.designs]
        route.surfaced = route_config.surfaced
        # Update steps in place: replacing them would insert before deleting and collide
        # on (route, position).
        wanted = [(stages[code].id, minutes) for code, minutes in route_config.steps]
        del route.steps[len(wanted) :]
        for position, (stage_id, minutes) in enumerate(wanted, start=1):
            if position <= len(route.steps):
                step = route.steps[position - 1]
                step.stage_id, step.standard_minutes = stage_id, minutes
            else:
                route.steps.append(
                    RouteStep(position=position, stage_id=stage_id, standard_minutes=minutes)
                )
        session.add(route)
        session.flush()


def _apply_reasons(
    session: Session, config: LabConfig, lab_id: int, stages: dict[str, Stage]
) -> None:
    reasons = {
        (reason.kind, reason.code): reason
        for reason in session.scalars(select(ReasonCode).where(ReasonCode.lab_id == lab_id))
    }
    for reason_config in config.reasons:
        key = (reason_config.kind, reason_config.code)
        reason = reasons.get(key) or ReasonCode(
            lab_id=lab_id, kind=reason_config.kind, code=reason_config.code
        )
        reason.description = reason_config.description
        reason.return_stage_id = (
            stages[reason_config.return_stage].id if reason_config.return_stage else None
        )
        session.add(reason)


def _apply_stores(session: Session, config: LabConfig, lab_id: int) -> None:
    stores = _by_code(session, Store, lab_id)
    for store_config in config.stores:
        store = stores.get(store_config.code) or Store(lab_id=lab_id, code=store_config.code)
        store.name = store_config.name
        store.tolerance_profile = store_config.tolerance_profile
        if store_config.notify_email is not None:
            store.notify_email = store_config.notify_email
        session.add(store)


def _apply_stations(
    session: Session,
    config: LabConfig,
    lab_id: int,
    stages: dict[str, Stage],
    lines: dict[str, ProductionLine],
) -> None:
    stations = _by_code(session, Station, lab_id, attribute="name")
    for station_config in config.stations:
        station = stations.get(station_config.name) or Station(
            lab_id=lab_id, name=station_config.name
        )
        station.stage_id = stages[station_config.stage].id
        station.line_id = lines[station_config.line].id if station_config.line else None
        session.add(station)
