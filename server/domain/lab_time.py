"""Times as people read them, always in the lab's time zone: every page and every flag reason
writes its times and durations here; and the zone's UTC offsets for SQL that sorts times into
lab-local days or shifts (the KPI counts, the SPC shift charts)."""

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, literal, select
from sqlalchemy.orm import Session

from server.models import Lab

NEARBY_DAYS = {-1: "yesterday", 0: "today", 1: "tomorrow"}


def lab_zone(session: Session, lab_id: int) -> ZoneInfo:
    # The zone alone: the lab row carries JSON settings, decoded on every load.
    return ZoneInfo(session.scalars(select(Lab.timezone).where(Lab.id == lab_id)).one())


def local_text(moment: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """'Tue 03 Mar 14:30' in the lab's time zone. Given `now`, the days next to it read
    'yesterday 17:05', 'today 14:30', 'tomorrow 09:00' (for pages, redrawn as time passes;
    stored text such as a flag reason goes without, so it never goes stale)."""
    local = moment.astimezone(zone)
    if now is not None:
        days = (local.date() - now.astimezone(zone).date()).days
        if word := NEARBY_DAYS.get(days):
            return f"{word} {local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"


def duration_text(delta: timedelta) -> str:
    """'45 min', '2 h 5 min', '3 d 4 h'."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def utc_offset(moment: Any, zone: ZoneInfo, first: date, last: date) -> Any:
    """SQL: the zone's UTC offset in seconds at a UTC time between the days `first` and
    `last`, exact across DST changes (the zone's rules as Python's zoneinfo has them)."""
    return utc_offset_at(moment, utc_offsets(zone, first, last))


def utc_offset_at(moment: Any, offsets: tuple[tuple[datetime, int], ...]) -> Any:
    """SQL: the UTC offset in seconds at a UTC time, from `utc_offsets`."""
    *later, (_earliest, before) = offsets
    whens = [(moment >= since, offset) for since, offset in later]
    return case(*whens, else_=before) if whens else literal(before)


@lru_cache(maxsize=256)
def utc_offsets(zone: ZoneInfo, first: date, last: date) -> tuple[tuple[datetime, int], ...]:
    """(since, offset in seconds) of each offset the zone had between the days `first` and
    `last` (a day more each side), latest first: found day by day, each change's instant
    by halving to the second."""

    def offset(epoch: int) -> int:
        utc_offset = datetime.fromtimestamp(epoch, zone).utcoffset()
        return 0 if utc_offset is None else int(utc_offset.total_seconds())

    day = int(datetime.combine(first - timedelta(days=1), time(), UTC).timestamp())
    end = int(datetime.combine(last + timedelta(days=2), time(), UTC).timestamp())
    changes = [(day, offset(day))]
    for following in range(day + 86400, end + 1, 86400):
        if offset(following) == changes[-1][1]:
            continue
        low, high = following - 86400, following  # the change is in (low, high]
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == changes[-1][1] else (low, middle)
        changes.append((high, offset(high)))
    return tuple((datetime.fromtimestamp(epoch, UTC), seconds) for epoch, seconds in changes[::-1])
