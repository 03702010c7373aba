"""The production instance config (``docker/dagster/dagster.yaml``) on a real PostgreSQL.

Everything of that file but the Kubernetes run launcher (no cluster here) is loaded as
is: dagster-postgres storage with its ``env:`` credentials, the run queue with
streamplane's tag limits, run monitoring. A worker run executes against it, the sensors'
run queries and heartbeat writes go through it, and a lag observation is stored and read
back: the storage paths the deployment depends on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
)
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)

from streamplane.jobs import HEARTBEAT_TAG, ROLE_TAG, SLOT_TAG, worker_job
from streamplane.resources import FleetResource, KafkaResource, StreamplaneResource
from streamplane.sensors.liveness import build_supervisor_liveness_sensor
from streamplane.sensors.runs import alive_runs
from tests.dagster.postgres import (
    INSTALL_HINT,
    PostgresCluster,
    can_run_as_root,
    find_bin_dir,
    throwaway_cluster,
)
from tests.dagster.services import require
from tests.support.procs import REPO_ROOT, free_port

PRODUCTION_YAML = REPO_ROOT / "docker/dagster/dagster.yaml"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_bin_dir()
    require(bin_dir is not None, INSTALL_HINT)
    require(
        can_run_as_root(), "a 'postgres' user to run PostgreSQL as (apt-get install postgresql)"
    )
    assert bin_dir is not None
    with throwaway_cluster(bin_dir) as running:
        yield running


@pytest.fixture
def pg_instance(
    cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """An instance from the production file, run launcher aside, on the test cluster."""
    config = yaml.safe_load(PRODUCTION_YAML.read_text())
    assert "postgres" in config["storage"]
    del config["run_launcher"]  # K8sRunLauncher needs a cluster; test_k8s covers it
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, value in cluster.env().items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def queued(job: str, tags: dict[str, str]) -> DagsterRun:
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=RegisteredCodeLocationOrigin("streamplane"),
            repository_name="__repository__",
        ),
        job_name=job,
    )
    return DagsterRun(
        job_name=job,
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.QUEUED,
        tags=tags,
        remote_job_origin=origin,
    )


def test_instance_uses_postgres_and_the_run_queue(pg_instance: DagsterInstance) -> None:
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(pg_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert pg_instance.run_monitoring_enabled


def test_worker_run_and_heartbeat_are_stored(pg_instance: DagsterInstance) -> None:
    nowhere = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        supervisor_grpc_addr=f"127.0.0.1:{free_port()}",
        drain_timeout_s=5,
    )
    config = {"max_inflight": 1, "engine": "polars", "idle_exit_seconds": 1}
    result = worker_job.execute_in_process(
        run_config={"ops": {"run_worker": {"config": config}}},
        resources={"streamplane": nowhere},
        instance=pg_instance,
    )
    assert result.success
    run = pg_instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.SUCCESS
    assert float(run.tags[HEARTBEAT_TAG]) > time.time() - 300
    assert pg_instance.all_logs(result.run_id)


def test_sensor_queries_and_observations(pg_instance: DagsterInstance) -> None:
    pg_instance.add_run(queued("supervisor_job", {ROLE_TAG: "supervisor", SLOT_TAG: "0"}))
    assert len(alive_runs(pg_instance, "supervisor")) == 1
    with build_sensor_context(
        instance=pg_instance, resources={"fleet": FleetResource(supervisors=1)}
    ) as context:
        result = build_supervisor_liveness_sensor()(context)
    assert not result.run_requests

    pg_instance.report_runless_asset_event(
        AssetObservation(asset_key="raw_events", metadata={"total_lag": 42})
    )
    records = pg_instance.fetch_observations(AssetKey("raw_events"), limit=1).records
    assert records[0].asset_observation is not None
    assert records[0].asset_observation.metadata["total_lag"].value == 42
