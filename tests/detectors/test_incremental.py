"""Incremental pass: only changed keys are examined, with the same answers as a full pass."""

from datetime import timedelta

import polars as pl
import pytest
from conftest import NOW, table
from test_recommend import _late, demand_up_network

from bench.detect import NOW as BENCH_NOW
from bench.detect import generate, mutate
from detectors import ChangedKeys, DetectorSettings, Snapshot, detect
from detectors.snapshot_index import RowLookup, SnapshotIndex

SETTINGS = DetectorSettings.model_validate({"stockout": {"horizon_days": 4}})


def network() -> Snapshot:
    base = demand_up_network()
    extra = table("demand", [{"sku": "Q", "location": "DC9", "period": r["period"], "planned_qty": 100,
                              "latest_qty": 300, "unit_value": 1} for r in base.demand.head(1).iter_rows(named=True)])
    ships = table("shipments", [_late("S1", 24), _late("S2", 24, dest="DC2")])
    return Snapshot(demand=base.demand.vstack(extra), inventory=base.inventory, lanes=base.lanes, shipments=ships)


def test_changed_keys_give_the_same_drifts_and_transfers_as_a_full_pass():
    snap = network()
    full = detect(snap, SETTINGS, NOW)
    inc = detect(snap, SETTINGS, NOW, changed=ChangedKeys(sku_locations=frozenset({("A", "DC1")}),
                                                           shipment_ids=frozenset({"S1"})))
    wanted = {d.fingerprint for d in full.drifts
              if d.key.get("shipment_id") == "S1" or (d.key.get("sku"), d.key.get("location")) == ("A", "DC1")}
    assert {d.fingerprint for d in inc.drifts} == wanted
    assert not any(d.key.get("sku") == "Q" for d in inc.drifts)  # unchanged elsewhere: not looked at
    def transfers(result):
        return sorted((a.params["from"], a.params["qty"]) for r in result.recommendations
                      for a in r.actions if a.operation == "create_transfer")
    # S1 brings 100 of the 400 short; sources DC3/DC4 did not change but are pulled in for the solver
    assert transfers(inc) == transfers(full) == [("DC3", 150.0), ("DC4", 150.0)]


def test_nothing_changed_nothing_reported():
    inc = detect(network(), SETTINGS, NOW, changed=ChangedKeys())
    assert inc.drifts == [] and inc.recommendations == []


def test_incremental_respects_the_planning_horizon_like_a_full_pass():
    snap = network()
    later = snap.demand.with_columns(snap.demand.get_column("period") + timedelta(days=120))
    snap = Snapshot(demand=later, inventory=snap.inventory, lanes=snap.lanes)
    inc = detect(snap, SETTINGS, NOW, changed=ChangedKeys(sku_locations=frozenset({("A", "DC1")})))
    # the +700 is four months out: no demand drift, and 500 on hand covers the 100 safety stock
    assert inc.drifts == [] and detect(snap, SETTINGS, NOW).drifts == []


def _affected(drift, changed: ChangedKeys, snap: Snapshot) -> bool:
    """The drifts a change can move: its own keys, and stock positions a changed shipment feeds."""
    kind = drift.kind.value
    if kind == "disruption":
        return drift.key["shipment_id"] in changed.shipment_ids
    if kind == "capacity_shift":
        return drift.key["resource_id"] in changed.resources
    pair = (drift.key["sku"], drift.key["location"])
    fed = {(r["sku"], r["destination"]) for r in snap.shipments.iter_rows(named=True)
           if r["shipment_id"] in changed.shipment_ids}
    return pair in changed.sku_locations or (kind == "stockout_risk" and pair in fed)


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_incremental_drifts_equal_the_full_pass_on_a_generated_network(seed):
    """Every drift a change can move, and nothing else, with the same numbers as a full pass —
    including a changed resource's load valued with SKUs outside the restricted snapshot."""
    snap, changed = mutate(generate(0.02), 0.01, seed=seed)
    settings = DetectorSettings()
    full = detect(snap, settings, BENCH_NOW)
    inc = detect(snap, settings, BENCH_NOW, changed=changed)
    wanted = sorted((d for d in full.drifts if _affected(d, changed, snap)), key=lambda d: d.fingerprint)
    assert wanted and changed.resources
    assert sorted(inc.drifts, key=lambda d: d.fingerprint) == wanted


@pytest.mark.parametrize("seed", [2, 3])
def test_an_index_kept_from_the_previous_snapshot_gives_the_same_pass(seed):
    """The bench's set-up: the index is built on the snapshot before the change and reused."""
    before = generate(0.02)
    snap, changed = mutate(before, 0.01, seed=seed)
    settings = DetectorSettings()
    index = SnapshotIndex(before)
    assert index.fits(snap)
    kept = detect(snap, settings, BENCH_NOW, changed=changed, index=index)
    fresh = detect(snap, settings, BENCH_NOW, changed=changed)
    assert kept.model_dump_json() == fresh.model_dump_json()
    assert kept.drifts and kept.recommendations


def test_a_stale_index_is_not_used():
    """Rows reordered or added: the index no longer says where keys are, and detect rebuilds it."""
    before = generate(0.02)
    snap, changed = mutate(before, 0.01, seed=4)
    index = SnapshotIndex(before)
    settings = DetectorSettings()
    expected = detect(snap, settings, BENCH_NOW, changed=changed).model_dump_json()
    reordered = Snapshot(demand=snap.demand.reverse(), shipments=snap.shipments.reverse(),
                         capacity=snap.capacity.reverse(), inventory=snap.inventory.reverse(), lanes=snap.lanes)
    grown = Snapshot(demand=snap.demand, shipments=snap.shipments.vstack(snap.shipments.head(1)),
                     capacity=snap.capacity, inventory=snap.inventory, lanes=snap.lanes)
    assert not index.fits(reordered) and not index.fits(grown)
    stale = detect(reordered, settings, BENCH_NOW, changed=changed, index=index)
    assert sorted(d.fingerprint for d in stale.drifts) == sorted(d.fingerprint for d in detect(
        snap, settings, BENCH_NOW, changed=changed).drifts)
    assert detect(snap, settings, BENCH_NOW, changed=changed, index=SnapshotIndex(reordered)).model_dump_json() \
        == expected


def test_row_lookup_finds_every_row_of_a_key_in_table_order():
    keys = pl.DataFrame({"sku": ["A", "B", "A", None, "A", "C"], "location": ["X", "X", "X", "X", "Y", None]})
    lookup = RowLookup(keys)
    assert lookup.rows([("A", "X")]).tolist() == [0, 2]
    assert lookup.rows([("A", "Y"), ("B", "X"), ("A", "X")]).tolist() == [0, 1, 2, 4]
    assert lookup.rows([("Z", "X"), (None, "X"), ("C", None)]).tolist() == []  # nulls never match, like a join
    assert lookup.rows([]).tolist() == []
    skus = RowLookup(keys.select("sku"))
    assert skus.rows(["A"]).tolist() == [0, 2, 4]


def test_row_lookup_moves_to_other_seeds_when_the_first_hashes_collide(monkeypatch):
    import detectors.snapshot_index as si

    real = si._hashes
    first = si._SEEDS[0]

    def colliding(frame, seed, check_seed):
        h, c = real(frame, seed, check_seed)
        return (h * 0, c) if (seed, check_seed) == first else (h, c)  # every key shares one hash

    monkeypatch.setattr(si, "_hashes", colliding)
    lookup = RowLookup(pl.DataFrame({"sku": ["A", "B", "A", "C"]}))
    assert lookup._seeds != first
    assert lookup.rows(["A"]).tolist() == [0, 2] and lookup.rows(["C", "Z"]).tolist() == [3]


def test_fits_reads_shared_key_buffers_as_equal_and_compares_the_rest():
    """A snapshot derived from the indexed one shares its key buffers; a rebuilt one with the
    same keys fits by value; one changed key, even at equal length, does not fit."""
    before = generate(0.02)
    index = SnapshotIndex(before)
    derived, _ = mutate(before, 0.01, seed=2)
    assert index.fits(derived)
    rebuilt = Snapshot(**{t: pl.DataFrame(getattr(before, t).to_dict(as_series=False),
                                          schema=getattr(before, t).schema)
                          for t in ("demand", "shipments", "capacity", "inventory", "lanes")})
    assert index.fits(rebuilt)
    renamed = before.demand.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("ZZZ")).otherwise(pl.col("sku")).alias("sku"))
    assert not index.fits(Snapshot(demand=renamed, shipments=before.shipments, capacity=before.capacity,
                                   inventory=before.inventory, lanes=before.lanes))
    sliced = Snapshot(demand=before.demand.slice(1).vstack(before.demand.head(1)), shipments=before.shipments,
                      capacity=before.capacity, inventory=before.inventory, lanes=before.lanes)
    assert not index.fits(sliced)


@pytest.mark.parametrize("seed", [2, 5])
def test_incremental_drifts_equal_the_full_pass_with_open_drifts(seed):
    """Hysteresis: drifts open before the change stay open in both passes, for the changed keys."""
    before = generate(0.02)
    snap, changed = mutate(before, 0.01, seed=seed)
    settings = DetectorSettings()
    opened = frozenset(d.fingerprint for d in detect(before, settings, BENCH_NOW).drifts)
    full = detect(snap, settings, BENCH_NOW, open_fingerprints=opened)
    inc = detect(snap, settings, BENCH_NOW, open_fingerprints=opened, changed=changed, index=SnapshotIndex(before))
    wanted = sorted((d for d in full.drifts if _affected(d, changed, snap)), key=lambda d: d.fingerprint)
    assert wanted
    assert sorted(inc.drifts, key=lambda d: d.fingerprint) == wanted
