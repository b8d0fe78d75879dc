"""Property-based tests (hypothesis) of `generate_backbones`' inputs: any lengths, targets,
guidance, seed, steps or motif start is either refused in one line (ValueError) before any
sampling, or gives one finite trace per length asked."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import numbers

from molgen.data.proteins import traces_of
from molgen.proteins import generate_backbones

small = st.integers(-5, 45)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(small, st.lists(small, min_size=0, max_size=3), numbers),
       st.fixed_dictionaries({}, optional={
           "helix": numbers, "strand": numbers, "guidance": numbers, "seed": numbers,
           "steps": st.one_of(st.integers(-2, 3), numbers), "motif_start": numbers}))
def test_backbone_options_are_refused_in_one_line_or_give_finite_traces(lengths, options):
    options.setdefault("steps", 2)  # valid calls stay cheap: 2 steps, chains of at most 45
    try:
        structure = generate_backbones(lengths, **options)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    asked = [lengths] if isinstance(lengths, int) else lengths
    traces = traces_of(structure)
    assert [len(t) for t in traces] == asked
    assert all(np.isfinite(t).all() for t in traces)
    for name in ("helix", "strand"):
        value = options.get(name)
        assert value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and 0 <= value <= 1)
    assert options.get("guidance") is None or math.isfinite(options["guidance"])
