"""Tenant pins (MESH_TENANT_DOMAIN_MAP) and the supervisor's mesh settings: errors name the pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamplane.config import load_settings, parse_tenant_domain_map
from streamplane.exceptions import ConfigError
from streamplane.platform.mesh.manifest import load_manifest
from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.supervisor.mesh_dispatch import mesh_config

PUBLISH = {
    "mesh_publish_endpoint": "127.0.0.1:9001",
    "mesh_source_node": "supervisor",
    "mesh_publish_domain": "default",
}


def test_pairs_are_parsed_with_spaces_and_empty_items() -> None:
    assert parse_tenant_domain_map(" gold = fast , silver=default,, ") == {
        "gold": "fast",
        "silver": "default",
    }
    assert parse_tenant_domain_map("") == {}


@pytest.mark.parametrize("bad", ["gold", "gold=", "=fast", "a=b,oops", "a=b, =c"])
def test_a_malformed_pair_is_named(bad: str) -> None:
    culprit = next(p.strip() for p in bad.split(",") if p.strip() and p.strip() != "a=b")
    with pytest.raises(ValueError, match="bad pair") as caught:
        parse_tenant_domain_map(bad)
    assert repr(culprit) in str(caught.value)


def test_a_malformed_map_fails_at_start_naming_the_variable_and_pair() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(mesh_tenant_domain_map="tenant-1=fast,tenant-2")
    assert caught.value.variable == "MESH_TENANT_DOMAIN_MAP"
    assert "'tenant-2'" in caught.value.reason


def test_tenants_without_a_pin_use_the_publish_domain() -> None:
    routes = TenantDomains({"gold": "trainer"}, "default")
    assert routes.domain_of("gold") == "trainer"
    assert routes.domain_of("silver") == "default"
    assert routes.domains == {"default", "trainer"}


def test_a_pin_to_a_domain_no_node_serves_names_the_pair() -> None:
    manifest = load_manifest(None)
    TenantDomains({"gold": "trainer"}, "default").check(manifest)
    with pytest.raises(ConfigError) as caught:
        TenantDomains({"gold": "trainer", "bronze": "nowhere"}, "default").check(manifest)
    assert caught.value.variable == "MESH_TENANT_DOMAIN_MAP"
    assert "'bronze=nowhere'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        TenantDomains({}, "nowhere").check(manifest)
    assert caught.value.variable == "MESH_PUBLISH_DOMAIN"


def test_mesh_publishing_is_off_without_its_settings() -> None:
    assert mesh_config(load_settings()) is None


@pytest.mark.parametrize("unset", sorted(PUBLISH))
def test_half_configured_mesh_publishing_names_what_is_missing(unset: str) -> None:
    values = {k: v for k, v in PUBLISH.items() if k != unset}
    with pytest.raises(ConfigError) as caught:
        mesh_config(load_settings(**values))
    assert caught.value.variable == unset.upper()


def test_a_tenant_map_without_mesh_publishing_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        mesh_config(load_settings(mesh_tenant_domain_map="gold=trainer"))
    assert caught.value.variable == "MESH_TENANT_DOMAIN_MAP"


def test_a_bad_publish_endpoint_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        mesh_config(load_settings(**{**PUBLISH, "mesh_publish_endpoint": "no-port"}))
    assert caught.value.variable == "MESH_PUBLISH_ENDPOINT"


def test_full_mesh_settings(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "hub", "role": "hub", "endpoint": "127.0.0.1:9001"},
                    {"id": "w", "role": "worker", "endpoint": "127.0.0.1:9002", "domains": ["d"]},
                    {"id": "t", "role": "trainer", "endpoint": "127.0.0.1:9003", "domains": ["f"]},
                ]
            }
        )
    )
    config = mesh_config(
        load_settings(
            **{**PUBLISH, "mesh_publish_domain": "d"},
            mesh_services_file=str(path),
            mesh_tenant_domain_map="gold=f",
        )
    )
    assert config is not None
    assert config.endpoint == "127.0.0.1:9001"
    assert config.source_node == "supervisor"
    assert config.tenants.domain_of("gold") == "f"
    assert config.tenants.domain_of("other") == "d"
    with pytest.raises(ConfigError) as caught:
        mesh_config(
            load_settings(**PUBLISH, mesh_services_file=str(path), mesh_tenant_domain_map="gold=f")
        )
    assert caught.value.variable == "MESH_PUBLISH_DOMAIN"  # "default" is not served there
