"""Hypothesis strategies shared by the property-based tests of the entry points."""
from hypothesis import strategies as st

numbers = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(max_size=3))
"""Anything a caller might pass where a number is expected: huge, negative, non-finite,
boolean, missing or text."""
