"""How people are shown where space is short (timelines, stations)."""


def initials(name: str) -> str:
    return "".join(part[0] for part in name.split() if part).upper()
