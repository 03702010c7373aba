"""What every settings section shares: the conventions, the error translation, the edges.

A section is a frozen pydantic-settings model whose field names are its environment
variables, lower-cased and without the section's ``env_prefix`` (or an explicit
``validation_alias``). Every default and bound is written once, on its field; the CLI
options and the Dagster resources derive theirs from the same fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamplane.exceptions import ConfigError

ENV_FILE = Path("docker/streaming/.env")

S = TypeVar("S", bound="Section")


class Section(BaseSettings):
    """Base of every settings section: environment and ``docker/streaming/.env``."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        populate_by_name=True,
    )
    #: Left off a field's name to make its CLI flag (``produce_count`` -> ``--count``).
    flag_prefix: ClassVar[str] = ""

    @field_validator("*", mode="after")
    @classmethod
    def _absolute_paths(cls, value: Any) -> Any:
        # Relative paths are resolved once, here, against the directory the process
        # started in: tools that later change directory (Kafka's, say) then agree.
        if isinstance(value, Path) and not value.is_absolute():
            return value.expanduser().absolute()
        return value


def variable_of(section: type[Section], name: str) -> str:
    """The environment variable that sets field ``name`` of ``section``."""
    info = section.model_fields[name]
    if isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    prefix = str(section.model_config.get("env_prefix") or "")
    return f"{prefix}{name}".upper()


def field_like(section: type[Section], name: str, description: str | None = None) -> Any:
    """A copy of a section's field (default and bounds) for another pydantic model.

    The Dagster resources use it, so a default such as MAX_INFLIGHT's is written once.
    """
    info = section.model_fields[name]
    copy = FieldInfo.merge_field_infos(info, description=description or info.description)
    copy.validation_alias = None
    copy.alias = None
    return copy


def build(section: type[S], values: dict[str, Any], env_file: Any = ENV_FILE) -> S:
    """Build ``section`` from the environment with ``values`` on top.

    Raises:
        ConfigError: naming the variable of the first offending field.
    """
    clean = {k: v for k, v in values.items() if v is not None}
    try:
        return section(_env_file=env_file, **clean)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else ""
        if name in section.model_fields:
            variable = variable_of(section, name)
        elif name:
            variable = name.upper()
        else:
            variable = _variable_in(str(err.get("msg", "")))
        secret = name in section.model_fields and "SecretStr" in str(
            section.model_fields[name].annotation
        )
        raise ConfigError(variable, _reason(err, quote_input=not secret)) from exc


def _variable_in(message: str) -> str:
    match = re.search(r"\b[A-Z][A-Z_]{3,}\b", message)
    return match.group(0) if match else "settings"


def _reason(err: Any, quote_input: bool = True) -> str:
    reason = str(err.get("msg", "invalid value"))
    given = err.get("input")
    if given is None or not quote_input or isinstance(given, dict):
        return reason
    if repr(given) not in reason:
        reason += f" (got {given!r})"
    return reason


def parse_listen(value: str) -> tuple[str, int]:
    """Split a listen address like ':7000' or '127.0.0.1:0' into host and port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected [HOST]:PORT, got {value!r}")
    return (host or "0.0.0.0", int(port))


def parse_tenant_domain_map(value: str) -> dict[str, str]:
    """Parse 'tenant=domain,...'; a malformed pair raises ValueError naming it."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in value.split(",")):
        if not pair:
            continue
        tenant, sep, domain = (s.strip() for s in pair.partition("="))
        if not sep or not tenant or not domain:
            raise ValueError(f"bad pair {pair!r}: expected tenant=domain")
        mapping[tenant] = domain
    return mapping
