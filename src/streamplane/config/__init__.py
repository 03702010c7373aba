"""streamplane's configuration: one root, :class:`Settings`, split into sections.

Every variable is read here and nowhere else. Field names are the variables,
lower-cased (a section may add an ``env_prefix``, or alias a field to a variable); each
default and bound is written once, on its field, and the CLI flags
(:mod:`streamplane.cli`) and the Dagster resources (:mod:`streamplane.resources`) take
theirs from the same fields. A bad value fails at start with a
:class:`~streamplane.exceptions.ConfigError` naming the variable.
"""

from streamplane.config.base import (
    ENV_FILE,
    Section,
    field_like,
    parse_listen,
    parse_tenant_domain_map,
    variable_of,
)
from streamplane.config.plane import (
    Engine,
    Guarantee,
    KafkaSettings,
    LogLevel,
    MeshNodeSettings,
    MeshSettings,
    Ordering,
    ProcessSettings,
    RpcSecuritySettings,
    SupervisorSettings,
    WorkerSettings,
)
from streamplane.config.rl import RLSettings
from streamplane.config.root import (
    RUNTIME_SECTIONS,
    SECTIONS,
    Settings,
    load_settings,
    variables,
)
from streamplane.config.tools import (
    BenchSettings,
    BrokerSettings,
    DeadLetterSettings,
    DevSettings,
    FaceSettings,
    ProduceSettings,
)

__all__ = [
    "ENV_FILE",
    "RUNTIME_SECTIONS",
    "SECTIONS",
    "BenchSettings",
    "BrokerSettings",
    "DeadLetterSettings",
    "DevSettings",
    "Engine",
    "FaceSettings",
    "Guarantee",
    "KafkaSettings",
    "LogLevel",
    "MeshNodeSettings",
    "MeshSettings",
    "Ordering",
    "ProcessSettings",
    "ProduceSettings",
    "RLSettings",
    "RpcSecuritySettings",
    "Section",
    "Settings",
    "SupervisorSettings",
    "WorkerSettings",
    "field_like",
    "load_settings",
    "parse_listen",
    "parse_tenant_domain_map",
    "variable_of",
    "variables",
]
