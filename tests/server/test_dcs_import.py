"""DCS job files in and out: all-or-nothing import (domain, CLI, API), lab tokens, export."""

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core.trace import EyeTrace, Trace
from drivers.dcs import Field, Record, parse, read_job, write
from lenstrack.cli import main
from server.context import ServerContext
from server.domain import auth
from server.domain.auth import LabPrincipal
from server.domain.dcs_jobs import DcsFile, ImportRefused, import_jobs, job_record
from server.domain.errors import Forbidden
from server.models import Job, LensDesign, Priority
from tests.drivers.dcs_samples import RIMLESS, SAMPLES, THREE_JOBS, sample_texts
from tests.server.conftest import Lab
from tests.server.payloads import field_errors
from tests.server.test_cli import Cli
from tests.server.test_no_500 import SEED, _mutants

THREE_TEXT = sample_texts()["three-jobs.dcs"]
THREE = DcsFile("three-jobs.dcs", THREE_TEXT)
SUMMARY_KEYS = {"job_number", "R", "L", "ipd", "trace_points", "labels"}


def lab_principal(lab: Lab) -> LabPrincipal:
    return LabPrincipal(lab.manager().lab_id, "test")


def run_import(lab: Lab, *files: DcsFile, **options: object) -> list[dict[str, object]]:
    with lab.context.db.session() as session:
        imported = import_jobs(session, lab_principal(lab), files, **options)  # type: ignore[arg-type]
        return [job.summary() for job in imported]


def jobs_by_number(context: ServerContext) -> dict[str, Job]:
    with context.db.session() as session:
        return {job.job_number: job for job in session.scalars(select(Job))}


def stored_trace(job: Job) -> Trace:
    assert job.trace is not None
    return Trace.model_validate(job.trace)


def refusal(lab: Lab, *files: DcsFile) -> ImportRefused:
    with pytest.raises(ImportRefused) as raised:
        run_import(lab, *files)
    return raised.value


def line_of(text: str, fragment: str) -> int:
    """The 1-based line where `fragment` first appears, found independently of the parser."""
    return text[: text.index(fragment)].count("\n") + 1


def with_record(records: list[Record], index: int, *replaced: Field) -> str:
    """The records written with some fields of one record replaced (same label)."""
    changed = {field.label: field for field in replaced}
    entries = tuple(
        changed.get(entry.label, entry) if isinstance(entry, Field) else entry
        for entry in records[index].entries
    )
    return write([*records[:index], Record(entries), *records[index + 1 :]])


def test_a_three_job_file_creates_three_jobs_with_traces_and_kept_labels(lab: Lab) -> None:
    lines = run_import(lab, THREE)
    assert [line["job_number"] for line in lines] == ["DCS-24001", "DCS-24002", "DCS-24003"]
    jobs = jobs_by_number(lab.context)
    assert set(jobs) == {"DCS-24001", "DCS-24002", "DCS-24003"}
    first, second, third = (jobs[number] for number in ("DCS-24001", "DCS-24002", "DCS-24003"))
    (rectangle,) = THREE_JOBS[0].traces
    assert stored_trace(first) == Trace(right=EyeTrace(radii=rectangle.radii))
    assert stored_trace(second).left is not None
    assert (first.store.code, second.store.code) == ("NORTH", "SOUTH")
    assert (first.lens_material, first.lens_index) == ("MR-8", 1.6)
    assert (second.lens_design, second.lens_material, second.priority) == (
        LensDesign.PAL,
        "MR-7",
        Priority.rush,
    )
    assert (third.lens_material, third.surfaced, first.surfaced) == ("CR-39", False, True)
    assert first.patient_ref == "NV-5521" and second.patient_ref == "DCS-24002"
    assert first.dcs_labels == {
        "OCHT": "21.00;21.00",
        "FTYP": "1",
        "ETYP": "1",
        "_VWX_ORDERREF": "A-99812",
        "_VWX_COATING": "HMC+",
        "CIRC": "145.20;145.20",
    }
    right = {line.eye: line for line in third.prescription}
    assert (right["R"].prism, right["R"].prism_base, right["L"].prism_base) == (1.0, "in", "in")
    assert first.frame == {"a_mm": 52.0, "b_mm": 36.0, "dbl_mm": 18.0, "ed_mm": 55.2}
    assert all(line["job_id"] == jobs[str(line["job_number"])].id for line in lines)


def test_one_bad_job_among_good_ones_creates_none_and_names_its_line(lab: Lab) -> None:
    text = with_record(THREE_JOBS, 1, Field("SPH", "+1.50;+1.7x"))
    problems = refusal(lab, DcsFile("good.dcs", write(RIMLESS)), DcsFile("bad.dcs", text)).problems
    line = line_of(text, "SPH=+1.50;+1.7x")
    assert problems == [(f"bad.dcs:{line}", "SPH: '+1.7x' is not a number")]
    assert jobs_by_number(lab.context) == {}


def test_every_problem_of_every_file_is_reported_and_nothing_is_created(lab: Lab) -> None:
    wrong_count = sample_texts()["single-vision.dcs"].replace(
        "TRCFMT=1;360;E;L", "TRCFMT=1;361;E;L"
    )
    garbage = write(THREE_JOBS).replace("DBL=17.00", "DBL 17.00")
    off_catalogue = with_record(THREE_JOBS, 2, Field("LIND", "1.55;1.55"))
    error = refusal(
        lab,
        DcsFile("count.dcs", wrong_count),
        DcsFile("garbage.dcs", garbage),
        DcsFile("index.dcs", off_catalogue),
        DcsFile("nojob.dcs", "SPH=1.00;1.00\r\n"),
    )
    assert error.status_code == 422
    assert [where for where, _ in error.problems] == [
        f"count.dcs:{line_of(wrong_count, ';361;E;L')}",
        f"garbage.dcs:{line_of(garbage, 'DBL 17.00')}",
        f"index.dcs:{line_of(off_catalogue, 'LIND=1.55')}",
        "nojob.dcs:1",
    ]
    assert "TRCFMT declares 361 radii, the R= lines hold 360" in error.problems[0][1]
    assert "not a LABEL=value line" in error.problems[1][1]
    assert "no SV material of index 1.55" in error.problems[2][1]
    assert jobs_by_number(lab.context) == {}


def test_order_checks_are_placed_at_the_label_they_came_from(lab: Lab) -> None:
    text = with_record(THREE_JOBS, 0, Field("SPH", "-2.30;-2.00"), Field("_LT_STORE", "EAST"))
    problems = dict(refusal(lab, DcsFile("x.dcs", text)).problems)
    assert problems == {"x.dcs:4": "SPH: must be a multiple of 0.125 D (right.sph)"}
    text = with_record(THREE_JOBS, 0, Field("_LT_STORE", "EAST"), Field("SPH", "-2.50;-2.00"))
    problems = dict(refusal(lab, DcsFile("x.dcs", text)).problems)
    assert problems == {"x.dcs:2": "_LT_STORE: unknown store 'EAST' (store_code)"}
    assert jobs_by_number(lab.context) == {}


def test_an_existing_job_number_is_refused_and_the_job_left_as_it_was(lab: Lab) -> None:
    job_id = lab.make_job("DCS-24002", store="NORTH")
    before = lab.job(job_id)
    error = refusal(lab, THREE)
    assert error.status_code == 409
    assert error.problems == [
        ("three-jobs.dcs:58", "job DCS-24002 exists already; not overwritten")
    ]
    after = jobs_by_number(lab.context)
    assert set(after) == {"DCS-24002"}
    job = after["DCS-24002"]
    assert (job.id, job.patient_ref, job.store.code, job.trace, job.dcs_labels) == (
        before.id,
        before.patient_ref,
        "NORTH",
        None,
        None,
    )
    assert [(rx.eye, rx.sph) for rx in job.prescription] == [
        (rx.eye, rx.sph) for rx in before.prescription
    ]


def test_a_job_twice_in_one_import_is_refused(lab: Lab) -> None:
    error = refusal(lab, THREE, DcsFile("again.dcs", write(THREE_JOBS[2])))
    first = f"three-jobs.dcs:{line_of(THREE_TEXT, 'JOB=DCS-24003')}"
    twice = f"job DCS-24003 is in this import twice (first at {first})"
    assert error.problems == [("again.dcs:1", twice)]
    assert jobs_by_number(lab.context) == {}


def test_a_dry_run_creates_nothing_and_answers_the_json_lines(lab: Lab) -> None:
    lines = run_import(lab, THREE, dry_run=True)
    assert jobs_by_number(lab.context) == {}
    assert [set(line) for line in lines] == [SUMMARY_KEYS] * 3
    assert lines[1]["R"] == {"sph": 1.5, "cyl": -0.5, "axis": 90, "add": 2.25}
    assert lines[1]["L"] == {"sph": 1.75, "cyl": 0.0, "axis": 180, "add": 2.25}
    assert lines[1]["ipd"] == {"R": 30.5, "L": 31.0}
    assert lines[1]["trace_points"] == {"R": 360, "L": 360}
    assert lines[0]["trace_points"] == {"R": 360}
    assert lines[2]["labels"] == {"TINT": "GREY 15%"}


def test_store_and_design_defaults_apply_to_records_without_their_labels(lab: Lab) -> None:
    text = "JOB=D-1\nSPH=1.00;1.00\nADD=2.00;2.00\nLIND=1.50;1.50\n"
    refused = refusal(lab, DcsFile("d.dcs", text))
    assert refused.problems == [("d.dcs:1", "no store: add _LT_STORE=CODE or give a default store")]
    with pytest.raises(ImportRefused) as no_design:
        run_import(lab, DcsFile("d.dcs", text), store="SOUTH")
    assert no_design.value.problems[0][0] == "d.dcs:3"
    run_import(lab, DcsFile("d.dcs", text), store="SOUTH", design=LensDesign.PAL)
    job = jobs_by_number(lab.context)["D-1"]
    assert (job.store.code, job.lens_design, job.trace) == ("SOUTH", LensDesign.PAL, None)


@pytest.mark.parametrize("username", ["north", "tech1", "qc"])
def test_only_the_lab_and_its_managers_import(lab: Lab, username: str) -> None:
    with lab.context.db.session() as session:
        person = session.scalar(select(auth.Person).where(auth.Person.username == username))
        assert person is not None
        principal = auth.PersonPrincipal(
            person.id, person.lab_id, person.role, person.store_id, person.name
        )
        with pytest.raises(Forbidden):
            import_jobs(session, principal, [THREE])
    run_import(lab, THREE)  # the lab itself may


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_an_imported_job_exports_to_the_same_values(lab: Lab, name: str) -> None:
    run_import(lab, DcsFile(name, sample_texts()[name]))
    for original in SAMPLES[name]:
        with lab.context.db.session() as session:
            job = session.scalars(select(Job).where(Job.job_number == original.job)).one()
            (exported,) = parse(write(job_record(job)))
        before, after = read_job(original), read_job(exported)
        for eye in ("R", "L"):
            was, now = before.eye(eye), after.eye(eye)
            assert (now.sph, now.cyl, now.add, now.mono_pd, now.prism) == (
                was.sph,
                was.cyl,
                was.add,
                was.mono_pd,
                was.prism,
            )
            assert now.axis == (180 if was.axis == 0 else was.axis)
            assert now.prism_base == was.prism_base
            assert now.seg_height == (was.seg_height or was.oc_height)
            assert now.lens_index == was.lens_index
        for label in ("HBOX", "VBOX", "DBL", "FED"):
            assert (exported.first(label) is None) == (original.first(label) is None)
        kept = [f for f in original.fields if f.label not in _mapped_labels()]
        assert [f for f in exported.fields if f in kept] == kept  # in their order
        sides = {"B": "R"}
        assert [(sides.get(t.side, t.side), t.radii, t.angles) for t in original.traces] == [
            (t.side, t.radii, t.angles) for t in exported.traces
        ]
        assert after.vendor["STORE"] == before.vendor["STORE"]


def _mapped_labels() -> frozenset[str]:
    from server.domain.dcs_jobs import MAPPED

    return MAPPED


# The commands: once as a process (the installed `lenstrack`), the rest through its main().


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def lenstrack(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., Run]:
    monkeypatch.setenv("LENSTRACK_DATABASE_URL", lab.context.settings.database_url)
    monkeypatch.setenv("LENSTRACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LENSTRACK_SETTINGS_FILE", str(tmp_path / "no-settings.toml"))

    def run(*args: str) -> Run:
        code = main(args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def test_lenstrack_import_dcs_runs_as_a_command(lab: Lab, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["LENSTRACK_DATABASE_URL"] = lab.context.settings.database_url
    path = tmp_path / "three-jobs.dcs"
    path.write_bytes(THREE_TEXT.encode())
    lines = [json.loads(line) for line in cli.ok("import-dcs", "--dry-run", str(path)).splitlines()]
    assert [set(line) for line in lines] == [SUMMARY_KEYS] * 3
    assert lines[0]["labels"]["_VWX_COATING"] == "HMC+"
    bad = tmp_path / "bad.dcs"
    bad.write_bytes(THREE_TEXT.replace("AX=90;0", "AX=90;O").encode())
    refused = cli.run("import-dcs", str(path), str(bad))
    line = line_of(THREE_TEXT, "AX=90;0")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == f"error: {bad}:{line}: AX: 'O' is not a number\n"
    assert jobs_by_number(lab.context) == {}


def test_cli_imports_all_or_nothing_and_exports(
    lenstrack: Callable[..., Run], tmp_path: Path
) -> None:
    path, bad = tmp_path / "three-jobs.dcs", tmp_path / "bad.dcs"
    path.write_bytes(THREE_TEXT.encode())
    bad.write_bytes((write(RIMLESS).replace("R=", "R=x", 1) + "\r\n" + THREE_TEXT).encode())
    refused = lenstrack("import-dcs", str(path), str(bad))
    assert (refused.code, refused.out) == (1, "")
    assert f"error: {bad}:{line_of(write(RIMLESS), 'R=')}: R: value 1 'x" in refused.err
    assert lenstrack("import-dcs", "--dry-run", str(path)).out.count("job_number") == 3
    created = [json.loads(line) for line in lenstrack("import-dcs", str(path)).out.splitlines()]
    assert all(isinstance(line["job_id"], int) for line in created)
    again = lenstrack("import-dcs", str(path))
    assert again.code == 1
    assert f"error: {path}:1: job DCS-24001 exists already" in again.err

    out = tmp_path / "out.dcs"
    assert lenstrack("export-dcs", "DCS-24002", "-o", str(out)).code == 0
    (record,) = parse(out.read_bytes())
    assert read_job(record).right.add == 2.25 and len(record.traces) == 2
    assert lenstrack("export-dcs", "DCS-24003").out.startswith("JOB=DCS-24003\r\n")
    missing = lenstrack("export-dcs", "NOPE-1")
    assert missing.code == 1 and "no job or tray 'NOPE-1'" in missing.err
    unreadable = lenstrack("import-dcs", str(tmp_path / "absent.dcs"))
    assert unreadable.code == 2 and "cannot read" in unreadable.err


def test_lab_tokens_from_the_cli_have_unique_live_names(lenstrack: Callable[..., Run]) -> None:
    token = lenstrack("lab-token", "create", "lms").out.strip()
    assert token.startswith("llt_") and len(token) > 40
    duplicate = lenstrack("lab-token", "create", "lms")
    assert duplicate.code == 1 and "named 'lms' already" in duplicate.err
    assert "revoked lab token lms" in lenstrack("lab-token", "revoke", "lms").out
    assert lenstrack("lab-token", "revoke", "lms").code == 1
    assert lenstrack("lab-token", "create", "lms").out.strip() not in ("", token)


# The API, for a manager and for another system.


@pytest.fixture
def lab_token(lab: Lab) -> str:
    with lab.context.db.session() as session:
        return auth.create_lab_token(session, "lms")


async def test_a_manager_imports_multipart_files(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    upload = [("files", ("three-jobs.dcs", THREE_TEXT.encode(), "text/plain"))]
    dry = await client.post("/api/jobs/import", params={"dry_run": "true"}, files=upload)
    assert dry.status_code == 200, dry.text
    assert [line["job_id"] for line in dry.json()] == [None] * 3
    assert jobs_by_number(lab.context) == {}
    created = await client.post("/api/jobs/import", files=upload)
    assert created.status_code == 201, created.text
    assert [line["job_number"] for line in created.json()] == [
        "DCS-24001",
        "DCS-24002",
        "DCS-24003",
    ]
    again = await client.post("/api/jobs/import", files=upload)
    assert again.status_code == 409
    assert field_errors(again)["three-jobs.dcs:1"].startswith("job DCS-24001 exists already")


async def test_a_lab_token_imports_json_until_revoked(
    client: httpx.AsyncClient, lab: Lab, lab_token: str
) -> None:
    headers = {"Authorization": f"Bearer {lab_token}"}
    body = {"files": [{"name": "rimless.dcs", "content": write(RIMLESS)}]}
    created = await client.post("/api/jobs/import", json=body, headers=headers)
    assert created.status_code == 201, created.text
    (line,) = created.json()
    assert line["labels"]["DRILLE"] == "R;1;-22.50;2.00;1.40\nR;2;22.50;2.00;1.40"
    job = await client.get(f"/api/jobs/{line['job_id']}", headers=headers)
    assert job.status_code == 200 and job.json()["job_number"] == "DCS-24004"
    with lab.context.db.session() as session:
        auth.revoke_lab_token(session, "lms")
    revoked = await client.post("/api/jobs/import", json=body, headers=headers)
    assert revoked.status_code == 401


async def test_malformed_input_is_422_naming_file_and_line(
    client: httpx.AsyncClient, lab: Lab, lab_token: str
) -> None:
    headers = {"Authorization": f"Bearer {lab_token}"}
    bad = {"files": [{"name": "a.dcs", "content": "JOB=A-1\nSPH=1.00;one\n"}]}
    response = await client.post("/api/jobs/import", json=bad, headers=headers)
    assert response.status_code == 422
    assert field_errors(response) == {"a.dcs:2": "SPH: 'one' is not a number"}
    for body in ({"files": []}, {"files": [{"name": "a.dcs"}]}, {"nope": 1}):
        response = await client.post("/api/jobs/import", json=body, headers=headers)
        assert response.status_code == 422, response.text
    for content, kind in (
        (b"JOB=A", "text/plain"),
        (b"--x\r\n", "multipart/form-data; boundary=x"),
    ):
        response = await client.post(
            "/api/jobs/import", content=content, headers=headers | {"content-type": kind}
        )
        assert response.status_code == 422, response.text
    huge = await client.post(
        "/api/jobs/import",
        content=b"x" * (9 * 1024 * 1024),
        headers=headers | {"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert jobs_by_number(lab.context) == {}


@pytest.mark.parametrize(
    ("username", "password"), [("north", "demo-store-pass"), ("tech1", "demo-tech-pass")]
)
async def test_store_staff_and_technicians_are_403(
    client: httpx.AsyncClient, lab: Lab, username: str, password: str
) -> None:
    await lab.log_in(client, username, password)
    body = {"files": [{"name": "three.dcs", "content": THREE_TEXT}]}
    response = await client.post("/api/jobs/import", json=body)
    assert response.status_code == 403
    assert jobs_by_number(lab.context) == {}


async def test_stations_are_403_and_strangers_401(client: httpx.AsyncClient, lab: Lab) -> None:
    body = {"files": [{"name": "three.dcs", "content": THREE_TEXT}]}
    station = await client.post(
        "/api/jobs/import", json=body, headers=lab.station_headers("EDGE-1")
    )
    assert station.status_code == 403
    stranger = await client.post(
        "/api/jobs/import", json=body, headers={"Authorization": "Bearer llt_made-up"}
    )
    assert stranger.status_code == 401


async def test_mutated_imports_never_make_a_5xx(
    client: httpx.AsyncClient, lab: Lab, lab_token: str
) -> None:
    """Mutated JSON bodies, and DCS text with lines cut, swapped, doubled or garbled."""
    rng = random.Random(SEED)
    headers = {"Authorization": f"Bearer {lab_token}"}
    seed_body = {"files": [{"name": "rimless.dcs", "content": write(RIMLESS)}]}
    bodies: list[object] = _mutants(rng, seed_body, 30)
    lines = THREE_TEXT.split("\r\n")
    for _ in range(30):
        mutated = list(lines)
        index = rng.randrange(len(mutated))
        mutated[index] = rng.choice(
            [
                "",
                mutated[index][::-1],
                mutated[index] * 2,
                "\x00",
                "R=" + "9" * 12,
                "JOB=" + "x" * 40,
            ]
        )
        bodies.append({"files": [{"name": "three.dcs", "content": "\r\n".join(mutated)}]})
    for body in bodies:
        response = await client.post("/api/jobs/import", json=body, headers=headers)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.is_error:
            field_errors(response)
