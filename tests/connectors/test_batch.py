"""Duplicates within one read batch are quarantined; the first record is kept."""

from datetime import UTC, date, datetime

from canonical.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentEvent,
    ShipmentLine,
    ShipmentRecord,
)
from connectors.batch import split_duplicates

WEEK = date(2026, 11, 23)


def test_a_second_inventory_row_for_the_same_sku_and_location_is_quarantined():
    first = InventoryRecord(sku="A", location="DC1", on_hand=500)
    other = InventoryRecord(sku="A", location="DC2", on_hand=500)
    again = InventoryRecord(sku="A", location="DC1", on_hand=500)  # the doubled row
    kept, quarantined = split_duplicates([first, other, again], source="erp")
    assert kept == [first, other] and kept[0] is first
    [bad] = quarantined
    assert (bad.source, bad.position) == ("erp", "record #2")
    assert bad.reason == "duplicate inventory key sku=A, location=DC1 in one batch; the first, at record #0, is used"
    assert InventoryRecord.model_validate_json(bad.raw) == again


def test_every_keyed_record_type_uses_its_business_key():
    ship = dict(origin="P", destination="DC1", lines=(ShipmentLine(sku="A", qty=1),))
    records = [
        DemandRecord(sku="A", location="DC1", period=WEEK, planned_qty=1, latest_qty=2),
        DemandRecord(sku="A", location="DC1", period=date(2026, 11, 30), planned_qty=1, latest_qty=2),  # kept
        DemandRecord(sku="A", location="DC1", period=WEEK, planned_qty=9, latest_qty=9),
        ShipmentRecord(shipment_id="S1", **ship),
        ShipmentRecord(shipment_id="S1", status="in_transit", **ship),  # same id, other content
        CapacityRecord(resource_type="lane", resource_id="P>DC1", period=WEEK, planned_capacity=1,
                       available_capacity=1, planned_load=1),
        CapacityRecord(resource_type="carrier", resource_id="P>DC1", period=WEEK, planned_capacity=1,
                       available_capacity=1, planned_load=1),  # kept: another resource type
        CapacityRecord(resource_type="lane", resource_id="P>DC1", period=WEEK, planned_capacity=2,
                       available_capacity=2, planned_load=2),
        LaneRecord(origin="P", destination="DC1", carrier="ACME", cost_per_unit=1, capacity=10),
        LaneRecord(origin="P", destination="DC1", carrier="FAST", cost_per_unit=1, capacity=10),  # kept
        LaneRecord(origin="P", destination="DC1", carrier="ACME", cost_per_unit=2, capacity=5),
    ]
    kept, quarantined = split_duplicates(records, source="s")
    assert kept == [records[i] for i in (0, 1, 3, 5, 6, 8, 9)]
    assert [(q.position, q.reason) for q in quarantined] == [
        ("record #2", "duplicate demand key sku=A, location=DC1, period=2026-11-23 in one batch; "
                      "the first, at record #0, is used"),
        ("record #4", "duplicate shipment key shipment_id=S1 in one batch; the first, at record #3, is used"),
        ("record #7", "duplicate capacity key resource_type=lane, resource_id=P>DC1, period=2026-11-23 in one "
                      "batch; the first, at record #5, is used"),
        ("record #10", "duplicate lane key origin=P, destination=DC1, carrier=ACME in one batch; the first, "
                       "at record #8, is used"),
    ]


def test_events_are_never_duplicates_and_positions_can_be_given():
    at = datetime(2026, 11, 26, 8, tzinfo=UTC)
    event = ShipmentEvent(shipment_id="S1", event_time=at, status="delayed")
    inv = InventoryRecord(sku="A", location="DC1", on_hand=1)
    kept, quarantined = split_duplicates([event, event, inv, inv], "webhook:tms",
                                         positions=["record #0", "record #2", "record #3", "record #7"])
    assert kept == [event, event, inv]
    assert [(q.source, q.position) for q in quarantined] == [("webhook:tms", "record #7")]
    assert "the first, at record #3, is used" in quarantined[0].reason


def test_an_empty_or_clean_batch_is_unchanged():
    assert split_duplicates([]) == ([], [])
    records = [InventoryRecord(sku=s, location="DC1", on_hand=1) for s in "ABC"]
    assert split_duplicates(records) == (records, [])
