"""Times as people read them, always in the lab's time zone: every page and every flag reason
writes its times and durations here."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from server.models import Lab

NEARBY_DAYS = {-1: "yesterday", 0: "today", 1: "tomorrow"}


def lab_zone(session: Session, lab_id: int) -> ZoneInfo:
    return ZoneInfo(session.get_one(Lab, lab_id).timezone)


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
