"""The allocation's tie-break and its LP-first solve (detectors/optimizer.py)."""

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import optimizer
from detectors.optimizer import TIE_STEP, allocate, tie_break


def _problem(arcs: list[tuple[int, float, int, int | None]], needs: list[float], caps: list[float]):
    return (
        pl.DataFrame(arcs, schema={"need_id": pl.Int64, "cost": pl.Float64, "res_a": pl.Int64, "res_b": pl.Int64},
                     orient="row").with_row_index("arc"),
        pl.DataFrame({"need_id": list(range(len(needs))), "qty": needs}),
        pl.DataFrame({"res_id": list(range(len(caps))), "cap": caps}),
    )


def _flows(arcs, needs, caps) -> dict[int, float]:
    out = allocate(arcs, needs, caps, unmet_penalty=1000.0, mip_max_variables=5000)
    return dict(zip(out.get_column("arc").to_list(), out.get_column("flow").to_list(), strict=True))


def test_equal_cost_arcs_the_lighter_one_is_used():
    # one need of 10, two sources with 10 each, same cost: either alone is an optimum
    arcs, needs, caps = _problem([(0, 1.5, 0, None), (0, 1.5, 1, None)], [10.0], [10.0, 10.0])
    w = tie_break(2, 1)
    assert w[0] != w[1]
    lighter = int(np.argmin(w[:2]))
    assert _flows(arcs, needs, caps) == {lighter: 10.0}
    assert _flows(arcs.reverse(), needs, caps) == {1 - lighter: 10.0}  # the place decides, not the source


def test_stock_short_the_need_with_the_lighter_unmet_column_goes_short():
    arcs, needs, caps = _problem([(0, 1.0, 0, None), (1, 1.0, 0, None)], [6.0, 6.0], [6.0])
    w = tie_break(2, 2)  # need 0 met: arc 0 and unmet 1 vs need 1 met: arc 1 and unmet 0
    expected = {0: 6.0} if w[0] + w[3] < w[1] + w[2] else {1: 6.0}
    assert _flows(arcs, needs, caps) == expected


def test_equal_rank_sums_are_still_decided():
    # two needs, two sources, four arcs of one cost: 0 + 3 vs 1 + 2
    arcs, needs, caps = _problem([(0, 1.0, 0, None), (0, 1.0, 1, None), (1, 1.0, 0, None), (1, 1.0, 1, None)],
                                 [5.0, 5.0], [5.0, 5.0])
    w = tie_break(4, 2)
    expected = {0: 5.0, 3: 5.0} if w[0] + w[3] < w[1] + w[2] else {1: 5.0, 2: 5.0}
    assert _flows(arcs, needs, caps) == expected


def test_tie_break_is_small_fixed_and_placed():
    w = tie_break(300, 40)
    assert w.min() >= TIE_STEP and w.max() < 2 * TIE_STEP and len(np.unique(w)) == len(w)
    assert np.array_equal(w, tie_break(300, 40))
    assert np.array_equal(w[:300], tie_break(300, 0))  # a column's weight depends on its place only


def test_a_cheaper_option_beats_the_tie_break():
    # 10 units; arc 1 cheaper by 1.1 * TIE_STEP per unit, more than the weights can differ by
    w = tie_break(2, 1)
    heavy = 0 if w[0] > w[1] else 1
    costs = [1.0, 1.0]
    costs[heavy] -= 1.1 * TIE_STEP
    arcs, needs, caps = _problem([(0, costs[0], 0, None), (0, costs[1], 1, None)], [10.0], [10.0, 10.0])
    assert _flows(arcs, needs, caps) == {heavy: 10.0}


@st.composite
def instances(draw):
    # as in transfers: res_a a source, res_b (if any) a lane; few distinct costs, so many ties
    n_needs, n_src, n_lane = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    arcs = [(draw(st.integers(0, n_needs - 1)), draw(st.sampled_from([1.0, 1.5, 2.0, 1000.0])),
             draw(st.integers(0, n_src - 1)), draw(st.none() | st.integers(n_src, n_src + n_lane - 1)))
            for _ in range(draw(st.integers(1, 14)))]
    needs = [float(draw(st.integers(1, 30))) for _ in range(n_needs)]
    caps = [float(draw(st.integers(0, 30))) for _ in range(n_src + n_lane)]
    return _problem(arcs, needs, caps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_lp_first_gives_the_flows_of_the_mip(instance):
    arcs, needs, caps = instance
    lp_first = _flows(arcs, needs, caps)
    saved = optimizer._INTEGRAL
    optimizer._INTEGRAL = -1.0  # no LP optimum counts as integral: always the MIP
    try:
        mip = _flows(arcs, needs, caps)
    finally:
        optimizer._INTEGRAL = saved
    assert lp_first == mip


# --- HiGHS against brute force: every integer allocation of a small instance is tried ---------


def _brute_force(arcs: list[tuple[int, float, int, int | None]], needs: list[float], caps: list[float],
                 penalty: float = 1000.0) -> float:
    import itertools

    best = float("inf")
    bound = int(max(needs + caps + [0.0]))
    for flows in itertools.product(range(bound + 1), repeat=len(arcs)):
        served = [0.0] * len(needs)
        used = [0.0] * len(caps)
        for (need, _cost, a, b), f in zip(arcs, flows, strict=True):
            served[need] += f
            used[a] += f
            if b is not None:
                used[b] += f
        if any(s > q for s, q in zip(served, needs, strict=True)) or any(
                u > c for u, c in zip(used, caps, strict=True)):
            continue
        cost = sum(f * arc[1] for arc, f in zip(arcs, flows, strict=True))
        best = min(best, cost + penalty * sum(q - s for q, s in zip(needs, served, strict=True)))
    return best


@st.composite
def small(draw):
    n_needs, n_res = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    arcs = [(draw(st.integers(0, n_needs - 1)), float(draw(st.integers(1, 5))), draw(st.integers(0, n_res - 1)),
             draw(st.none() | st.integers(0, n_res - 1))) for _ in range(draw(st.integers(1, 3)))]
    arcs = [(n, c, a, None if b == a else b) for n, c, a, b in arcs]
    return arcs, [float(draw(st.integers(0, 4))) for _ in range(n_needs)], [float(draw(st.integers(0, 4)))
                                                                             for _ in range(n_res)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small())
def test_the_allocation_is_as_cheap_as_the_best_of_every_integer_allocation(instance):
    arcs, need_qty, cap_qty = instance
    frames = _problem(arcs, need_qty, cap_qty)
    flows = _flows(*frames)
    served = [0.0] * len(need_qty)
    cost = 0.0
    for arc, f in flows.items():
        served[arcs[arc][0]] += f
        cost += f * arcs[arc][1]
    got = cost + 1000.0 * sum(q - s for q, s in zip(need_qty, served, strict=True))
    assert got == _brute_force(arcs, need_qty, cap_qty)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["DC1", "DC2"]), st.integers(1, 4)), min_size=1, max_size=2,
                unique_by=lambda x: x[0]),
       st.lists(st.tuples(st.sampled_from(["DC1", "DC2"]), st.sampled_from(["B", "C", "ACME"]), st.integers(1, 5),
                          st.integers(0, 4)), max_size=3, unique_by=lambda x: (x[0], x[1])),
       st.integers(1, 5))
def test_reassignment_is_the_cheapest_of_every_integer_reassignment(load, lanes, overflow):
    """One ACME cut: its load on each lane may move, in whole units, to any other carrier with
    room on that lane; what does not move is penalised. Never onto ACME."""
    import itertools

    from detectors.settings import DetectorSettings
    from detectors.transfers import plan_reassignment

    items = pl.DataFrame({"fingerprint": ["cut"] * len(load), "origin": ["P"] * len(load),
                          "destination": [d for d, _ in load], "carrier": ["ACME"] * len(load),
                          "qty": [float(q) for _, q in load]})
    cuts = pl.DataFrame({"fingerprint": ["cut"], "overflow": [float(overflow)], "excluded": [["ACME"]]})
    lane_frame = pl.DataFrame({"origin": ["P"] * len(lanes), "destination": [d for d, *_ in lanes],
                               "carrier": [c for _, c, *_ in lanes], "cost_per_unit": [float(x[2]) for x in lanes],
                               "capacity": [float(x[3]) for x in lanes]},
                              schema={"origin": pl.Utf8, "destination": pl.Utf8, "carrier": pl.Utf8,
                                      "cost_per_unit": pl.Float64, "capacity": pl.Float64})
    moves = plan_reassignment(items, cuts, lane_frame, DetectorSettings())
    assert "ACME" not in moves.get_column("to_carrier").to_list()
    got = float((moves.get_column("qty") * moves.get_column("cost_per_unit")).sum())
    got += 1000.0 * (overflow - float(moves.get_column("qty").sum()))
    options = [(d, cpu, cap) for d, c, cpu, cap in lanes if c != "ACME"]
    stock = dict(load)
    best = float("inf")
    for flows in itertools.product(range(6), repeat=len(options)):
        by_dest: dict[str, int] = {}
        if any(f > cap for f, (_, _, cap) in zip(flows, options, strict=True)):
            continue
        for f, (d, _, _) in zip(flows, options, strict=True):
            by_dest[d] = by_dest.get(d, 0) + f
        if any(n > stock.get(d, 0) for d, n in by_dest.items()) or sum(flows) > overflow:
            continue
        cost = sum(f * cpu for f, (_, cpu, _) in zip(flows, options, strict=True))
        best = min(best, cost + 1000.0 * (overflow - sum(flows)))
    assert got == best
