"""env.template: the seed's variables with the seed's defaults, and streamplane's own."""

from __future__ import annotations

from collections import Counter

import pytest

from streamplane.config import RUNTIME_SECTIONS, SECTIONS, FaceSettings, Settings, variables
from tests.docker.stack import SEED_DEFAULTS, TEMPLATE, parse_env_file

# What a plane process reads, plus the two RL variables of the seed's table.
RUNTIME = {
    **variables(*RUNTIME_SECTIONS),
    "RL_RESULTS_TOPIC": ("rl", "rl_results_topic"),
    "RL_BUFFER_DIR": ("rl", "rl_buffer_dir"),
}


def _names_in_template() -> list[str]:
    active, commented = parse_env_file(TEMPLATE)
    return [*active, *commented]


@pytest.mark.parametrize("name", sorted(SEED_DEFAULTS))
def test_every_seed_variable_has_the_seed_default(name: str) -> None:
    active, commented = parse_env_file(TEMPLATE)
    default = SEED_DEFAULTS[name]
    if default is None:
        # Unset by default: documented as "# NAME=" so that it stays unset.
        assert name not in active, f"{name} must stay unset (seed default), not {active[name]!r}"
        assert commented.get(name) == "", f"{name} missing from env.template as '# {name}='"
    else:
        assert active.get(name) == default, f"{name}: template {active.get(name)!r} != {default!r}"


def test_the_seed_table_matches_the_settings_defaults() -> None:
    for name, default in SEED_DEFAULTS.items():
        section, field = RUNTIME[name]
        value = SECTIONS[section].model_fields[field].default
        assert (None if value is None else str(value)) == default, name


def test_every_runtime_setting_is_in_the_template() -> None:
    names = set(_names_in_template())
    missing = [name for name in RUNTIME if name not in names]
    assert not missing, f"env.template lacks {missing}"


def test_every_dagster_face_setting_is_in_the_template() -> None:
    active, _ = parse_env_file(TEMPLATE)
    missing = list(variables("face"))
    missing = [name for name in missing if name not in active]
    assert not missing, f"env.template lacks {missing}"


def test_template_values_are_the_runtime_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded as the settings' env file, the template changes nothing and fails nothing."""
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    from_template = Settings(_env_file=TEMPLATE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    runtime = (*RUNTIME_SECTIONS, "rl")
    assert from_template.model_dump(include=set(runtime)) == defaults.model_dump(
        include=set(runtime)
    )


def test_template_face_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    active, _ = parse_env_file(TEMPLATE)
    for name, value in active.items():
        if name.startswith("STREAMPLANE_"):
            monkeypatch.setenv(name, value)
    face = FaceSettings()
    assert face.supervisors == 0  # the stack's own supervisor service is the supervisor
    assert face.max_workers == FaceSettings.model_fields["max_workers"].default


def test_no_variable_is_listed_twice_or_set_empty() -> None:
    counts = Counter(_names_in_template())
    assert [n for n, c in counts.items() if c > 1] == []
    active, _ = parse_env_file(TEMPLATE)
    # An empty value is a value (an empty path is the current folder): unset ones are
    # written commented instead.
    assert [n for n, v in active.items() if v == ""] == []
