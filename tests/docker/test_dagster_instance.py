"""docker/streaming/dagster.yaml: a valid Dagster instance on PostgreSQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef

from tests.docker.stack import COMPOSE, DAGSTER_YAML, TEMPLATE, parse_env_file

PG_ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "dagster",
    "DAGSTER_PG_DB": "dagster",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    shutil.copyfile(DAGSTER_YAML, tmp_path / "dagster.yaml")
    return tmp_path


def test_instance_config_validates(home: Path) -> None:
    config, instance_class = dagster_instance_config(str(home))
    assert instance_class is None
    assert "postgres" in config["storage"]


def test_every_configured_class_accepts_its_config(home: Path) -> None:
    """What the containers would instantiate, checked without connecting anywhere."""
    ref = InstanceRef.from_dir(str(home))
    datas = {
        "run_storage": ref.run_storage_data,
        "event_storage": ref.event_storage_data,
        "schedule_storage": ref.schedule_storage_data,
        "run_coordinator": ref.run_coordinator_data,
        "compute_logs": ref.compute_logs_data,
        "local_artifact_storage": ref.local_artifact_storage_data,
    }
    for role, data in datas.items():
        assert data is not None, role
        klass = getattr(__import__(data.module_name, fromlist=[data.class_name]), data.class_name)
        result = process_config(klass.config_type(), data.config_dict)
        assert result.success, f"{role}: {result.errors}"
    assert ref.run_storage_data.module_name == "dagster_postgres"


def test_worker_limit_matches_the_template() -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    limits = config["run_queue"]["tag_concurrency_limits"]
    worker = next(lim for lim in limits if lim.get("value") == "worker")
    active, _ = parse_env_file(TEMPLATE)
    assert worker["limit"] == int(active["STREAMPLANE_MAX_WORKERS"])


def test_the_dagster_services_set_what_the_instance_reads() -> None:
    text = DAGSTER_YAML.read_text()
    needed = set(re.findall(r"env: ([A-Z_]+)", text))
    assert needed == set(PG_ENV)
    compose = yaml.safe_load(COMPOSE.read_text())
    for service in ("dagster-webserver", "dagster-daemon"):
        env = compose["services"][service]["environment"]
        assert needed <= set(env), service
        assert env["DAGSTER_HOME"] == "/opt/dagster/home"


def test_postgres_url_uses_the_installed_driver(home: Path) -> None:
    """dagster-postgres ships psycopg2; a bare postgresql:// means psycopg 3 to SQLAlchemy."""
    import sqlalchemy
    from dagster_postgres.utils import pg_url_from_config

    ref = InstanceRef.from_dir(str(home))
    data = ref.run_storage_data
    klass = getattr(__import__(data.module_name, fromlist=[data.class_name]), data.class_name)
    config = process_config(klass.config_type(), data.config_dict).value
    url = pg_url_from_config(config)
    assert url.startswith("postgresql+psycopg2://dagster:")
    engine = sqlalchemy.create_engine(url)  # no connection is made
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()
