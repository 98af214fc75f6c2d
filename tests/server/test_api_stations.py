"""A station's view of itself: its labels come from the lab config as last loaded."""

import httpx

from server.domain.labsetup import apply_lab_config
from server.labconfig import LabConfig
from tests.server.conftest import Lab


async def test_labels_name_identifiers_and_stages_for_the_station(
    client: httpx.AsyncClient, lab: Lab, lab_config: LabConfig
) -> None:
    headers = lab.station_headers("EDGE-1")
    labels = (await client.get("/api/stations/me/labels", headers=headers)).json()
    assert labels["treatments"]["blue_filter"] == "Blue-light filter"
    assert labels["frame_types"]["semi_rimless"] == "Semi-rimless"
    assert labels["frame"]["a_mm"] == "A"
    assert list(labels["stages"])[:2] == [stage.code for stage in lab_config.stages[:2]]
    assert labels["stages"]["final_qc"] == "Final QC"
    # `config load` with new names: the next request serves them, no restart.
    renamed = lab_config.model_copy(
        update={
            "labels": lab_config.labels.model_copy(
                update={"treatments": {"blue_filter": "Blue blocker"}}
            )
        }
    )
    with lab.context.db.session() as session:
        apply_lab_config(session, renamed)
    labels = (await client.get("/api/stations/me/labels", headers=headers)).json()
    assert labels["treatments"] == {"blue_filter": "Blue blocker"}


async def test_labels_are_for_stations_only(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    response = await client.get("/api/stations/me/labels")
    assert response.status_code == 403


async def test_a_station_caches_the_badges_of_station_operators_only(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    """Not the lab manager's badge nor name: only who may sign in there (the demo's
    technicians and QC inspector)."""
    response = await client.get("/api/stations/me/operators", headers=lab.station_headers("QC-1"))
    assert response.status_code == 200, response.text
    operators = {operator["badge_code"]: operator for operator in response.json()}
    assert set(operators) == {"B1001", "B1002", "B2001"}
    assert {operator["role"] for operator in operators.values()} == {"technician", "qc_inspector"}
    assert "Maria Lopez" not in response.text
