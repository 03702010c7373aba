"""The worker's processor registry: entry-point names, module:factory, routes."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from streamplane.config import Settings
from streamplane.exceptions import ConfigError
from streamplane.platform.worker import processor as registry
from streamplane.platform.worker.features_processor import FeaturesProcessor
from streamplane.platform.worker.processor import (
    PROCESSORS_GROUP,
    ROUTES_GROUP,
    Emit,
    Processor,
    WorkItem,
    load_processor,
    registered_processors,
)

HERE = __name__


class Named(Processor):
    """A processor that only records what wraps it."""

    def __init__(self, label: str, inner: Processor | None = None) -> None:
        self.label = label
        self.inner = inner

    def process(self, item: WorkItem, emit: Emit) -> None:
        raise NotImplementedError


def plain(settings: Settings) -> Processor:
    return Named("plain")


def not_a_processor(settings: Settings) -> object:
    return "nope"


def route_to_nothing(settings: Settings, processor: Processor) -> object:
    return None


def wrap_a(settings: Settings, processor: Processor) -> Processor:
    return Named("a", processor)


def wrap_b(settings: Settings, processor: Processor) -> Processor:
    return Named("b", processor)


def keep(settings: Settings, processor: Processor) -> Processor:
    return processor


def _registered(
    monkeypatch: pytest.MonkeyPatch, processors: dict[str, str], routes: dict[str, str]
) -> None:
    table = {
        PROCESSORS_GROUP: [EntryPoint(n, v, PROCESSORS_GROUP) for n, v in processors.items()],
        ROUTES_GROUP: [EntryPoint(n, v, ROUTES_GROUP) for n, v in routes.items()],
    }
    monkeypatch.setattr(registry, "entry_points", lambda group: table[group])


def _settings(results_topic: str | None = None) -> Settings:
    return Settings(rl_results_topic=results_topic, worker_engine="polars")


def test_the_installed_package_registers_features_and_the_rl_route() -> None:
    assert "features" in registered_processors()
    from importlib.metadata import entry_points

    routes = {ep.name: ep.value for ep in entry_points(group=ROUTES_GROUP)}
    assert routes["rl-rollouts"] == "streamplane.rl.envs.route:rollout_route"


def test_unknown_name_fails_naming_the_variable_and_the_registered_names() -> None:
    with pytest.raises(ConfigError) as caught:
        load_processor("no-such-processor", _settings())
    assert caught.value.variable == "WORKER_PROCESSOR"
    assert "'no-such-processor'" in caught.value.reason
    assert "features" in caught.value.reason


def test_features_without_rl_is_the_plain_feature_processor() -> None:
    assert type(load_processor("features", _settings())) is FeaturesProcessor


def test_module_factory_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _registered(monkeypatch, {}, {"a": f"{HERE}:wrap_a"})
    built = load_processor(f"{HERE}:plain", _settings("rl-results"))
    assert isinstance(built, Named)
    assert (built.label, built.inner) == ("plain", None)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"{HERE}:not_a_processor", "did not return a Processor"),
        (f"{HERE}:missing", "cannot load"),
        ("no_such_module_anywhere:factory", "cannot load"),
        (":factory", "module:factory"),
        (f"{HERE}:", "module:factory"),
    ],
)
def test_bad_module_factory_is_a_config_error(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        load_processor(spec, _settings())
    assert caught.value.variable == "WORKER_PROCESSOR"


def test_routes_wrap_a_named_processor_in_name_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _registered(
        monkeypatch,
        {"mine": f"{HERE}:plain"},
        {"b": f"{HERE}:wrap_b", "a": f"{HERE}:wrap_a", "c": f"{HERE}:keep"},
    )
    built = load_processor("mine", _settings())
    assert isinstance(built, Named)
    assert built.label == "b"
    assert isinstance(built.inner, Named)
    assert built.inner.label == "a"
    assert isinstance(built.inner.inner, Named)
    assert built.inner.inner.label == "plain"


def test_a_route_that_returns_no_processor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _registered(monkeypatch, {"mine": f"{HERE}:plain"}, {"bad": f"{HERE}:route_to_nothing"})
    with pytest.raises(ConfigError, match="did not return a Processor"):
        load_processor("mine", _settings())


def test_registered_names_are_listed_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    _registered(monkeypatch, {"zeta": f"{HERE}:plain", "alpha": f"{HERE}:plain"}, {})
    assert registered_processors() == ["alpha", "zeta"]
    with pytest.raises(ConfigError, match="registered: alpha, zeta"):
        load_processor("features", _settings())
