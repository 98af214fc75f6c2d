"""The reliability suite runs real server and station processes: each test takes tens of
seconds. `-m "not reliability"` leaves it out."""

import os
from pathlib import Path

import pytest

from tests.reliability.harness import (
    SCENARIOS,
    Plan,
    Report,
    RunScenario,
    Unavailable,
    run_scenario,
)


@pytest.fixture
def run(tmp_path: Path) -> RunScenario:
    """Runs a scenario; skips when this machine lacks what it needs — except PostgreSQL under
    CI=true, which fails."""

    def run_named(name: str, plan: Plan) -> Report:
        try:
            report = run_scenario(SCENARIOS[name], plan, tmp_path)
        except Unavailable as error:
            if error.required_in_ci and os.environ.get("CI") == "true":
                pytest.fail(f"{error} (CI=true requires it)")
            pytest.skip(f"{name}: {error}")
        print(report.describe())  # the figures, with -s or -rP
        return report

    return run_named
