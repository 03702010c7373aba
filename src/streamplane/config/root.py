"""The one settings root: every section, read from the environment in one place."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from streamplane.config.base import ENV_FILE, Section, build, variable_of
from streamplane.config.plane import (
    KafkaSettings,
    MeshNodeSettings,
    MeshSettings,
    ProcessSettings,
    RpcSecuritySettings,
    SupervisorSettings,
    WorkerSettings,
)
from streamplane.config.rl import RLSettings
from streamplane.config.tools import (
    BenchSettings,
    BrokerSettings,
    DeadLetterSettings,
    DevSettings,
    FaceSettings,
    ProduceSettings,
)

#: Section attribute of :class:`Settings` -> its model.
SECTIONS: dict[str, type[Section]] = {
    "kafka": KafkaSettings,
    "process": ProcessSettings,
    "supervisor": SupervisorSettings,
    "worker": WorkerSettings,
    "mesh": MeshSettings,
    "mesh_node": MeshNodeSettings,
    "rpc": RpcSecuritySettings,
    "rl": RLSettings,
    "face": FaceSettings,
    "broker": BrokerSettings,
    "produce": ProduceSettings,
    "dev": DevSettings,
    "dlq": DeadLetterSettings,
    "bench": BenchSettings,
}

#: Field name -> the section that owns it (field names are unique across sections).
OWNER: dict[str, str] = {
    field: section for section, model in SECTIONS.items() for field in model.model_fields
}
if len(OWNER) != sum(len(m.model_fields) for m in SECTIONS.values()):  # pragma: no cover
    raise RuntimeError("two settings sections declare the same field name")


class Settings(BaseModel):
    """All of streamplane's configuration, one section per subsystem.

    ``Settings(input_topic="x")`` reads every section from the environment (and
    ``docker/streaming/.env``) with the given fields, by name, on top; a bad value raises
    :class:`~streamplane.exceptions.ConfigError` naming its variable.
    """

    model_config = ConfigDict(frozen=True)

    kafka: KafkaSettings
    process: ProcessSettings
    supervisor: SupervisorSettings
    worker: WorkerSettings
    mesh: MeshSettings
    mesh_node: MeshNodeSettings
    rpc: RpcSecuritySettings
    rl: RLSettings
    face: FaceSettings
    broker: BrokerSettings
    produce: ProduceSettings
    dev: DevSettings
    dlq: DeadLetterSettings
    bench: BenchSettings

    def __init__(self, _env_file: Any = ENV_FILE, **values: Any) -> None:
        if set(values) <= set(SECTIONS) and all(isinstance(v, Section) for v in values.values()):
            given: dict[str, Any] = dict(values)  # model_copy and friends pass sections
            flat: dict[str, Any] = {}
        else:
            given, flat = {}, values
        unknown = sorted(set(flat) - set(OWNER))
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        sections = {
            name: given.get(name)
            or build(model, {k: v for k, v in flat.items() if OWNER[k] == name}, _env_file)
            for name, model in SECTIONS.items()
        }
        super().__init__(**sections)

    def redacted(self) -> dict[str, Any]:
        """Every field as a flat dict that is safe to print or log (secrets as ****)."""
        shown: dict[str, Any] = {}
        for name in SECTIONS:
            for field, value in getattr(self, name):
                shown[field] = "**********" if isinstance(value, SecretStr) else value
        return shown


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides (CLI flags) on top.

    ``None`` overrides are ignored, so unset CLI flags fall through to the environment.

    Raises:
        ConfigError: naming the first offending variable.
    """
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


#: The sections a process of the plane (supervisor, worker) is configured by.
RUNTIME_SECTIONS = ("kafka", "process", "supervisor", "worker", "mesh", "rpc")


def variables(*sections: str) -> dict[str, tuple[str, str]]:
    """Each variable of the named sections (all when none is named) -> (section, field)."""
    return {
        variable_of(SECTIONS[name], field): (name, field)
        for name in sections or tuple(SECTIONS)
        for field in SECTIONS[name].model_fields
    }
