"""Property tests: whatever bytes arrive, the X12 and EPCIS parsers answer with records and
quarantines, never an exception, and quickly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical.model import ShipmentEvent
from connectors.epcis import event_list, parse_document
from connectors.x12 import parse_x12

X12_FIXTURES = sorted(Path("/work/shared/fixtures/x12").glob("*.edi"))
EPCIS_FIXTURES = sorted(Path("/work/shared/fixtures/epcis").glob("*.jsonld"))
X12_TEXTS = [p.read_text() for p in X12_FIXTURES]
EPCIS_DOCS = [json.loads(p.read_bytes()) for p in EPCIS_FIXTURES]
BATCH = (Path("/work/shared/fixtures/x12") / "214_status_batch.edi").read_text()

FUZZ = settings(max_examples=150, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.timeout(240)


def _assert_well_formed_x12(data: bytes | str) -> None:
    result = parse_x12(data, "fuzz")
    for item in result.quarantined:
        assert item.reason and item.position
    assert result.records or result.quarantined or not str(data).strip()


# --- X12 ----------------------------------------------------------------------------------------


def _segments(text: str) -> list[str]:
    return [s.strip("\r\n") for s in text.split("~") if s.strip()]


@st.composite
def mutated_x12(draw) -> str:
    segments = _segments(draw(st.sampled_from(X12_TEXTS)))
    for _ in range(draw(st.integers(1, 4))):
        if not segments:
            break
        index = draw(st.integers(0, len(segments) - 1))
        operation = draw(st.sampled_from(["drop", "duplicate", "truncate", "garble", "swap"]))
        if operation == "drop":
            del segments[index]
        elif operation == "duplicate":
            segments.insert(index, segments[index])
        elif operation == "truncate":
            segments[index] = segments[index][: draw(st.integers(0, len(segments[index])))]
        elif operation == "garble":
            segments[index] = draw(st.text(alphabet="AZ09*>~|^:\n\r -._", max_size=40))
        else:
            other = draw(st.integers(0, len(segments) - 1))
            segments[index], segments[other] = segments[other], segments[index]
    text = "~".join(segments) + "~"
    if draw(st.booleans()):  # flip separators in the body but not in ISA, or everywhere
        old = draw(st.sampled_from(["*", "~", ">"]))
        new = draw(st.sampled_from(["|", "^", "\n", "*", "~", ":"]))
        start = draw(st.sampled_from([0, 106]))
        text = text[:start] + text[start:].replace(old, new)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut]
    return text


@FUZZ
@given(mutated_x12())
def test_mutated_x12_never_raises(text: str) -> None:
    _assert_well_formed_x12(text)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    parse_x12(data, "fuzz")
    parse_x12(b"ISA*00*          *00*          *02*RDWY           *ZZ*ACMEFOODS      *261118"
              b"*0912*U*00401*000004711*0*P*>~" + data, "fuzz")


@FUZZ
@given(st.integers(0, 105), st.characters(codec="ascii"))
def test_any_isa_character_flip_is_handled(position: int, char: str) -> None:
    text = BATCH[:position] + char + BATCH[position + 1:]
    _assert_well_formed_x12(text)


ENVELOPE_IDS = {"ST", "SE", "GS", "GE", "ISA", "IEA"}
TX1 = range(3, 20)  # indexes of the first transaction's body segments in the batch (ST at 2)


@FUZZ
@given(st.sampled_from(list(TX1)),
       st.sampled_from(["drop", "duplicate", "replace"]),
       st.from_regex(r"[A-Z][A-Z0-9]{1,2}", fullmatch=True).filter(lambda s: s not in ENVELOPE_IDS),
       st.lists(st.text(alphabet="ABCXYZ0123456789 .-", max_size=12), max_size=6))
def test_damage_to_one_transaction_never_loses_the_other(index: int, operation: str,
                                                        seg_id: str, elements: list[str]) -> None:
    segments = _segments(BATCH)
    assert segments[2].startswith("ST*214*0001")
    if operation == "drop":
        del segments[index]
    elif operation == "duplicate":
        segments.insert(index, segments[index])
    else:
        segments[index] = "*".join([seg_id, *elements])
    result = parse_x12("~".join(segments) + "~", "fuzz", default_zone="America/Chicago")
    second = [r for r in result.records
              if isinstance(r, ShipmentEvent) and r.shipment_id == "SHP-40022"]
    assert [e.status for e in second] == ["arrived", "delivered"]
    if operation != "replace":  # a dropped or repeated segment always breaks the SE count
        assert any("ST 0001" in q.position and "SE01" in q.reason for q in result.quarantined)


# --- EPCIS --------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
EVENT_KEYS = ["type", "eventTime", "eventTimeZoneOffset", "bizStep", "disposition", "parentID",
              "epcList", "bizTransactionList", "readPoint", "bizLocation", "sourceList",
              "destinationList", "errorDeclaration", "eventID", "quantityList", "childEPCs"]


@FUZZ
@given(json_values)
def test_random_json_never_raises(value) -> None:
    result = parse_document(value, "fuzz")
    parse_document(json.dumps(value), "fuzz")
    assert all(q.reason for q in result.quarantined + result.skipped)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_into_epcis_never_raise(data: bytes) -> None:
    parse_document(data, "fuzz")


@st.composite
def mutated_events(draw) -> list:
    events = [dict(e) if isinstance(e, dict) else e
              for e in event_list(draw(st.sampled_from(EPCIS_DOCS)))]
    for _ in range(draw(st.integers(1, 5))):
        event = events[draw(st.integers(0, len(events) - 1))]
        if not isinstance(event, dict):
            continue
        key = draw(st.sampled_from(EVENT_KEYS))
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(json_values)
    return events


@FUZZ
@given(mutated_events())
def test_mutated_gs1_events_are_each_accounted_for(events: list) -> None:
    result = parse_document({"epcisBody": {"eventList": events}}, "fuzz")
    assert len(result.events) + len(result.quarantined) + len(result.skipped) == len(events)
    for event in result.events:
        assert event.event_time.utcoffset().total_seconds() == 0


@FUZZ
@given(st.sampled_from(EPCIS_FIXTURES), st.data())
def test_truncated_epcis_files_are_one_document_quarantine(path: Path, data) -> None:
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw.rstrip()) - 1))  # always loses the closing brace
    result = parse_document(raw[:cut], "fuzz")
    assert result.events == [] and len(result.quarantined) == 1
