"""`streamplane bench`: a raw passthrough against the pipeline, in one run, as one JSON line.

:mod:`.run` is the entry; :mod:`.phases` the fill, passthrough, pipeline and latency
runs; :mod:`.passthrough` the hand-written baseline; :mod:`.fleet` the processes;
:mod:`.verify` the record tally and latency figures; :mod:`.rss` the memory sampler.
"""

from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.run import run_bench
from streamplane.dev.bench.verify import Tally, percentile

__all__ = ["BenchError", "Tally", "percentile", "run_bench"]
