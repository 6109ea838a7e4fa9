"""The fast fingerprint paths must equal model.fingerprint exactly, or the store sees new drifts."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.model import DriftKind, fingerprint
from detectors._common import add_fingerprints, fast_fingerprint

TEXT = st.text(min_size=0, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=5), TEXT, min_size=1, max_size=4))
def test_fast_fingerprint_equals_model(key):
    assert fast_fingerprint("rec:disruption", key) == fingerprint("rec:disruption", key)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=5))
def test_vectorised_fingerprints_equal_model(rows):
    frame = pl.DataFrame({"sku": [r[0] for r in rows], "location": [r[1] for r in rows]},
                         schema={"sku": pl.Utf8, "location": pl.Utf8})
    out = add_fingerprints(frame, DriftKind.STOCKOUT_RISK, ["sku", "location"])
    expected = [fingerprint("stockout_risk", {"sku": s, "location": loc}) for s, loc in rows]
    assert out.get_column("fingerprint").to_list() == expected
