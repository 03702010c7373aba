"""The feature transform's interface: one definition, two engines.

Contract that every engine meets (the parity test checks polars against cuDF)
=============================================================================

Input: one batch of Kafka record values, each a JSON object (bytes), and the Kafka
timestamp (epoch milliseconds) of each record. Fields read from the object:

============  ============================  ==========================================
field         JSON type                     notes
============  ============================  ==========================================
event_id      string                        required
tenant        string                        required
user_id       string or integer             required; an integer becomes its decimal
                                            string (``7`` is ``"7"``); a boolean or a
                                            float is an error
event_type    string                        required
value         number                        required; a boolean is not a number
ts            integer                       required; epoch ms, must fit in int64;
                                            ``1.0`` is not an integer, and a float
                                            that looks like epoch seconds gets a
                                            reason that says so
skill         string or null                optional; absent means null
============  ============================  ==========================================

Other fields are ignored. A record that is not valid JSON, or whose JSON is not an
object, is a ``"parse"`` error; a required field that is missing, null or of the wrong
type is a ``"schema"`` error. Errors are reported per record (`RecordError`) and never
fail the rest of the batch: every input position appears exactly once, either in
`FeatureBatch.indices` or in `FeatureBatch.errors`, both in ascending order.

Output: one compact JSON object (bytes) per valid record, with exactly these keys in
this order (`FEATURE_COLUMNS`):

=======================  ========  ===========================================================
column                   JSON      meaning
=======================  ========  ===========================================================
event_id                 string    copied
tenant                   string    copied
user_id                  string    copied
event_type               string    copied
skill                    string    copied; ``null`` when absent or null
                         or null
value                    float     the input number as float64 (``3`` becomes ``3.0``)
ts                       integer   copied (epoch ms)
src_timestamp_ms         integer   the Kafka timestamp passed in for this record
value_log1p              float     ``sign(value) * ln(1 + |value|)``
hour_of_day              integer   0-23, UTC, from ``ts``
day_of_week              integer   ISO: 1 = Monday .. 7 = Sunday, UTC, from ``ts``
is_weekend               boolean   ``day_of_week`` is 6 or 7
is_conversion            boolean   ``event_type`` is ``"purchase"`` or ``"signup"`` (exact
                                   case)
user_events_in_batch     integer   number of valid records of this ``user_id`` in the batch
user_value_sum_in_batch  float     sum of ``value`` over those records; ``null`` if the sum
                                   overflows float64
=======================  ========  ===========================================================

The two ``*_in_batch`` columns are micro-batch window features: a group-by on
``user_id`` over the valid records of this one call. They depend on where the batch
boundaries fall (the same stream cut into other batches gives other values), and
invalid records never count towards them. Time features use floor division of ``ts``,
so timestamps before 1970 get the right UTC hour and weekday. Floats are compared
between engines with a tolerance (sums may add in another order); everything else is
equal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from streamplane.platform.features.registry import load_class

FEATURE_COLUMNS: tuple[str, ...] = (
    "event_id",
    "tenant",
    "user_id",
    "event_type",
    "skill",
    "value",
    "ts",
    "src_timestamp_ms",
    "value_log1p",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "is_conversion",
    "user_events_in_batch",
    "user_value_sum_in_batch",
)
"""Output column names, in the order each output JSON object lists them."""

ErrorKind = Literal["parse", "schema"]

# Engine name -> (module, class). Modules are imported on demand so that asking for
# polars never touches cuDF's import machinery, which is slow and may be broken.
_ENGINES: dict[str, tuple[str, str]] = {
    "polars": ("streamplane.platform.features.polars_engine", "PolarsEngine"),
    "cudf": ("streamplane.platform.features.cudf_engine", "CudfEngine"),
}
ENGINE_NAMES: tuple[str, ...] = tuple(_ENGINES)
"""Names accepted by `get_engine`."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one input record produced no feature row."""

    index: int
    """Position of the record in the input batch."""
    kind: ErrorKind
    """``"parse"``: not JSON or not an object; ``"schema"``: a field is missing, null or
    of the wrong type."""
    reason: str
    """Short human text, e.g. ``"missing field 'user_id'"``."""


@dataclass(frozen=True, slots=True)
class FeatureBatch:
    """The result of transforming one batch."""

    indices: list[int]
    """Input positions that produced a feature row, ascending."""
    values: list[bytes]
    """One JSON object per produced row, aligned with `indices`."""
    errors: list[RecordError]
    """One entry per input position that produced no row, ascending by index."""


class FeatureEngine(ABC):
    """Computes the feature rows of a batch; see the module docstring for the contract."""

    name: ClassVar[str]
    """The name `get_engine` knows this engine by."""

    @abstractmethod
    def transform(self, values: Sequence[bytes], timestamps_ms: Sequence[int]) -> FeatureBatch:
        """Turn raw record values into feature rows.

        `timestamps_ms[i]` is the Kafka timestamp of `values[i]`; both sequences must have
        the same length (`ValueError` otherwise). Bad records are reported in the result,
        never raised.
        """


def get_engine(name: str, *, setting: str = "WORKER_ENGINE") -> FeatureEngine:
    """Return a new engine by name (see `ENGINE_NAMES`), without trying it.

    Raises `ValueError` for an unknown name and `EngineUnavailable` (naming `setting`,
    the variable that chose the engine) when the engine's library cannot be loaded
    here. `streamplane.platform.features.load_engine` also checks that it can compute.
    """
    try:
        module_name, class_name = _ENGINES[name]
    except KeyError:
        known = ", ".join(ENGINE_NAMES)
        raise ValueError(f"unknown feature engine {name!r}; expected one of: {known}") from None
    engine_class = load_class(module_name, class_name, name, setting)
    engine = engine_class()
    if not isinstance(engine, FeatureEngine):
        raise TypeError(f"{module_name}.{class_name} is not a FeatureEngine")
    return engine
