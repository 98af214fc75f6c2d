"""Server settings: the TOML file, environment variables over it, and the SQLite defaults."""

from pathlib import Path

import pytest
from sqlalchemy import text

from server.db import Database
from server.settings import Settings


def test_the_settings_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "lenstrack.toml"
    settings_file.write_text(f'data_dir = "{tmp_path / "data"}"\nport = 9001\nsession_hours = 4\n')
    for variable in ("LENSTRACK_DATA_DIR", "LENSTRACK_PORT", "LENSTRACK_SESSION_HOURS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LENSTRACK_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("LENSTRACK_PORT", "9002")
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert (settings.port, settings.session_hours) == (9002, 4)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'lenstrack.db'}"


def test_a_misspelt_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = tmp_path / "lenstrack.toml"
    settings_file.write_text("prot = 9001\n")
    monkeypatch.setenv("LENSTRACK_SETTINGS_FILE", str(settings_file))
    with pytest.raises(ValueError, match="prot"):
        Settings()


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'lenstrack.db'}")
    with database.engine.connect() as connection:
        pragmas = [
            connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys")
        ]
    assert pragmas == ["wal", 2, 1]  # synchronous 2 = FULL
