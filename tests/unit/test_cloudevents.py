"""Unit tests of the CloudEvents Kafka codec: both content modes, every rejection, round trips."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import (
    EVENTS,
    INBOUND_EVENTS,
    OUTBOUND_EVENTS,
    AllocationChanged,
    AllocationDecision,
    AllocationSnapshot,
    Envelope,
    EventData,
    InvalidEvent,
    ObjectiveContribution,
    PortfolioReprioritized,
    ProjectAtRisk,
    ProjectLifecycleChanged,
    ProjectRecovered,
    ProjectRegistered,
    ProjectStarted,
    RankedProject,
    ResourceAllocated,
    ResourceConflictResolved,
    ResourceRequested,
    RiskReason,
    StatusChanged,
    StrategyChanged,
    decode_data,
    decode_event,
    parse_record,
    to_structured,
)
from shared.events.contracts import (
    GateReviewed,
    InterventionAccepted,
    InterventionDeclined,
    InterventionEnded,
    InterventionProposed,
    LessonsSuggested,
    ProjectHealthAssessed,
    ProjectProgramChanged,
    ProjectRebaselined,
    SubmittedDeliverable,
    SuggestedLesson,
)

pytestmark = pytest.mark.fast

Headers = list[tuple[str, bytes]]

STRUCTURED: Headers = [("content-type", b"application/cloudevents+json; charset=utf-8")]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Realistic payloads, as an ERP, a PPM tool, an HR system and a strategy tool would send them.
INBOUND_SAMPLES: dict[str, dict[str, Any]] = {
    "project-started": {
        "project_id": "PRJ-2041",
        "name": "Customer portal relaunch",
        "business_unit": "Retail",
        "manager": "ada.lovelace@example.com",
        "sponsor": "Chief Digital Officer",
        "start_date": "2026-01-05",
        "planned_finish_date": "2026-12-18",
        "budget": 1200000,
        "currency": "EUR",
        "objectives": [
            {"objective_id": "OBJ-GROWTH", "contribution": 0.8},
            {"objective_id": "OBJ-CX", "contribution": 0.5},
        ],
        "key_project": True,
        "methodology": "hybrid",
        "planned_value_curve": [
            {"date": "2026-03-31", "planned_value": 200000},
            {"date": "2026-06-30", "planned_value": 600000},
            {"date": "2026-12-18", "planned_value": 1200000},
        ],
        "erp_cost_center": "CC-4711",
    },
    "status-changed": {
        "project_id": "PRJ-2041",
        "as_of": "2026-06-30",
        "percent_complete": 42.5,
        "actual_cost": 683250.75,
        "lifecycle": "active",
        "reported_health": "amber",
        "milestones": [
            {"name": "Design signed off", "due": "2026-03-31", "done": True},
            {"name": "Pilot live", "due": "2026-06-15", "done": False},
            {"name": "Go-live", "due": "2026-11-30", "done": False},
        ],
        "comment": "Pilot slipped: vendor API late.",
    },
    "resource-requested": {
        "request_id": "REQ-2041-007",
        "project_id": "PRJ-2041",
        "skill": "data-engineer",
        "fte": 1.5,
        "start": "2026-07-06",
        "end": "2026-09-25",
        "priority": "high",
        "named_resource": "EMP-1042",
    },
    "strategy-changed": {
        "strategy_version": 4,
        "effective_date": "2026-07-01",
        "objectives": [
            {"objective_id": "OBJ-GROWTH", "name": "Grow digital revenue", "weight": 0.5},
            {"objective_id": "OBJ-COST", "name": "Cut operating cost", "weight": 0.3},
            {"objective_id": "OBJ-CX", "name": "Customer experience", "weight": 0.2},
        ],
        "directives": [
            {"action": "terminate", "project_id": "PRJ-0999", "reason": "Market exit"},
            {"action": "accelerate", "objective_id": "OBJ-GROWTH", "reason": "Board priority"},
            {"action": "pause", "business_unit": "Wholesale", "reason": "Spending freeze"},
        ],
    },
}
KEYS = {
    "project-started": "PRJ-2041",
    "status-changed": "PRJ-2041",
    "resource-requested": "PRJ-2041",
    "strategy-changed": "4",
}

WEEKS = ["2026-W48", "2026-W49"]
OUTBOUND_SAMPLES: list[EventData] = [
    ProjectRegistered(
        project_id="PRJ-2041",
        name="Customer portal relaunch",
        business_unit="Retail",
        manager="ada.lovelace@example.com",
        sponsor=None,
        start_date=date(2026, 1, 5),
        planned_finish_date=date(2026, 12, 18),
        budget=1_200_000,
        currency="EUR",
        objectives=[ObjectiveContribution(objective_id="OBJ-GROWTH", contribution=0.8)],
        key_project=True,
        methodology="hybrid",
        lifecycle="active",
    ),
    ProjectLifecycleChanged(
        project_id="PRJ-2041", from_stage="active", to_stage="on_hold", cause="status-changed"
    ),
    PortfolioReprioritized(
        strategy_version=4,
        projects=[
            RankedProject(
                project_id="PRJ-2041",
                score=0.82,
                rank=1,
                previous_rank=3,
                action="accelerate",
                why="Serves the top objective",
            ),
            RankedProject(
                project_id="PRJ-0999", score=0.0, rank=2, action="terminate", why="Directive"
            ),
        ],
    ),
    ProjectAtRisk(
        project_id="PRJ-2041",
        severity="red",
        reasons=[
            RiskReason(
                code="schedule",
                message="SPI 0.71 is below 0.8",
                numbers={"spi": 0.71, "threshold": 0.8},
            ),
            RiskReason(code="stale_status", message="No status for 21 days", numbers={}),
        ],
        metrics={"spi": 0.71, "cpi": 0.95, "tcpi": None},
    ),
    ProjectRecovered(project_id="PRJ-2041", metrics={"spi": 0.98, "cpi": 1.02}),
    ResourceAllocated(
        request_id="REQ-2041-007",
        project_id="PRJ-2041",
        resource_id="EMP-1042",
        skill="data-engineer",
        fte_granted=1.0,
        fte_requested=1.5,
        weeks=WEEKS,
        status="partial",
        reason="Capacity shared with a higher-ranked project",
    ),
    ResourceConflictResolved(
        conflict_id="CONF-2026-W48-data-engineer",
        skill="data-engineer",
        weeks=WEEKS,
        winners=[
            AllocationDecision(
                request_id="REQ-1",
                project_id="PRJ-2041",
                fte_granted=1.5,
                fte_requested=1.5,
                why="Rank 1, key project",
            )
        ],
        losers=[
            AllocationDecision(
                request_id="REQ-2",
                project_id="PRJ-3000",
                fte_granted=0.5,
                fte_requested=1.0,
                why="Rank 5",
            )
        ],
        rationale="Greedy by portfolio rank is optimal here: one skill, divisible FTE.",
    ),
    AllocationChanged(
        project_id="PRJ-3000",
        request_id="REQ-2",
        before=AllocationSnapshot(fte_granted=0.5, weeks=WEEKS, resource_id="EMP-7"),
        after=AllocationSnapshot(fte_granted=0.0, weeks=[]),
        cause="project-lifecycle-changed: PRJ-3000 terminated",
    ),
    ProjectHealthAssessed(
        project_id="PRJ-2041",
        health="amber",
        reasons=[
            RiskReason(
                code="schedule",
                severity="amber",
                message="SPI(t) 0.94 is below 0.95.",
                numbers={"spi_t": 0.94, "green_from": 0.95},
            )
        ],
        metrics={"spi": 0.93, "spi_t": 0.94, "cpi": 1.01, "eac": 99_009.9, "tcpi": None},
        forecast_finish=date(2027, 1, 22),
        as_of=date(2026, 7, 16),
        assessed_at=datetime(2026, 7, 16, 9, 30, tzinfo=UTC),
        at_risk_since=datetime(2026, 7, 2, 9, 30, tzinfo=UTC),
        trigger="status-changed",
    ),
    ProjectRebaselined(
        project_id="PRJ-2041",
        baseline_version=2,
        budget=300_000,
        start_date=date(2026, 1, 1),
        planned_finish_date=date(2027, 3, 31),
        approved_by="pmo-admin@example.com",
        reason="Scope tripled by the steering committee",
        approved_at=datetime(2026, 7, 3, 9, 0, tzinfo=UTC),
        cause="pmo-admin@example.com",
    ),
    ProjectProgramChanged(
        project_id="PRJ-2041",
        program_id="MERGER-ACME",
        previous_program_id=None,
        changed_at=datetime(2026, 7, 3, 9, 5, tzinfo=UTC),
        cause="pmo-admin@example.com",
    ),
    GateReviewed(
        project_id="PRJ-2041",
        review_id=7,
        from_stage="active",
        to_stage="completed",
        decision="passed",
        reviewer="pmo-admin@example.com",
        reviewed_at=datetime(2026, 12, 15, 16, 0, tzinfo=UTC),
        deliverables=[
            SubmittedDeliverable(
                name="closure_report",
                evidence="https://docs.example.com/prj-2041/closure.pdf",
                submitted_by="ada.lovelace@example.com",
                submitted_at=datetime(2026, 12, 14, 9, 0, tzinfo=UTC),
            )
        ],
        evidence="Closure board minutes, 15 December",
        methodology="stage_gate",
    ),
    LessonsSuggested(
        project_id="PRJ-2077",
        manager="ada.lovelace@example.com",
        lessons=[
            SuggestedLesson(
                lesson_id=3,
                project_id="PRJ-2041",
                title="Vendor delays held up the data migration",
                similarity=["business_unit", "methodology"],
            )
        ],
    ),
    InterventionProposed(
        project_id="PRJ-2041",
        intervention_id="INT-0f3a9c2b1d4e",
        origin="risk",
        specialty="schedule-recovery",
        expert_id="exp-ana",
        fte=0.5,
        start=date(2026, 11, 30),
        end=date(2027, 1, 8),
        reasons=["key project red", "SPI(t) 0.62 below 0.80"],
        staffing="Granted in full: Ana (exp-ana) 0.5 FTE in 2026-W49 to 2027-W02.",
        proposed_at=datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
    ),
    InterventionAccepted(
        project_id="PRJ-2041",
        intervention_id="INT-0f3a9c2b1d4e",
        origin="risk",
        specialty="schedule-recovery",
        expert_id="exp-ana",
        fte=0.5,
        start=date(2026, 11, 30),
        end=date(2027, 1, 8),
        request_id="INT-0f3a9c2b1d4e",
        accepted_by="pmo-admin@example.com",
        accepted_at=datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
    ),
    InterventionDeclined(
        project_id="PRJ-2041",
        intervention_id="INT-1a2b3c4d5e6f",
        origin="advice",
        specialty="agile-coaching",
        fte=0.2,
        start=date(2026, 11, 30),
        end=date(2026, 12, 31),
        declined_by="pmo-admin@example.com",
        reason="The team has a coach this quarter",
        declined_at=datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
    ),
    InterventionEnded(
        project_id="PRJ-2041",
        intervention_id="INT-0f3a9c2b1d4e",
        origin="risk",
        specialty="schedule-recovery",
        expert_id="exp-ana",
        fte=0.5,
        start=date(2026, 11, 30),
        end=date(2027, 1, 8),
        reason="project recovered (health back to green)",
        was_accepted=True,
        ended_at=datetime(2026, 12, 18, 16, 0, tzinfo=UTC),
    ),
]


def structured(name: str, data: Any, **attributes: Any) -> bytes:
    document = {
        "specversion": "1.0",
        "id": "9c1d6f1e-2f7b-4d0e-a3c5-1b2e3f4a5b6c",
        "source": "urn:erp:sap-s4:prod",
        "type": f"pmo.{name}",
        "time": "2026-06-30T18:05:12.250Z",
        "datacontenttype": "application/json",
        "data": data,
        **attributes,
    }
    return json.dumps(document).encode()


def binary_headers(name: str, **extra: bytes) -> Headers:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"9c1d6f1e-2f7b-4d0e-a3c5-1b2e3f4a5b6c"),
        ("ce_source", b"urn:jira:pmo"),
        ("ce_type", f"pmo.{name}".encode()),
        ("ce_time", b"2026-06-30T20:05:12+02:00"),
        ("content-type", b"application/json"),
    ]
    return headers + list(extra.items())


def rejection(value: bytes | None, headers: Headers) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(parse_record(value, headers))
    return caught.value.reason


# --- inbound events in both content modes -----------------------------------------------------


@pytest.mark.parametrize("name", list(INBOUND_SAMPLES))
def test_structured_mode_inbound(name: str) -> None:
    envelope = parse_record(
        structured(name, INBOUND_SAMPLES[name], traceparent=TRACEPARENT), STRUCTURED
    )
    assert envelope.type == f"pmo.{name}"
    assert envelope.event_name == name
    assert envelope.source == "urn:erp:sap-s4:prod"
    assert envelope.time == datetime(2026, 6, 30, 18, 5, 12, 250000, tzinfo=UTC)
    assert envelope.extensions == {"traceparent": TRACEPARENT}
    event = decode_event(envelope)
    assert type(event) is INBOUND_EVENTS[name]
    assert event.key() == KEYS[name]


@pytest.mark.parametrize("name", list(INBOUND_SAMPLES))
def test_binary_mode_inbound(name: str) -> None:
    value = json.dumps(INBOUND_SAMPLES[name]).encode()
    envelope = parse_record(value, binary_headers(name, ce_traceparent=TRACEPARENT.encode()))
    assert envelope.id == "9c1d6f1e-2f7b-4d0e-a3c5-1b2e3f4a5b6c"
    assert envelope.source == "urn:jira:pmo"
    assert envelope.datacontenttype == "application/json"
    assert envelope.time == datetime(2026, 6, 30, 18, 5, 12, tzinfo=UTC)
    assert envelope.extensions == {"traceparent": TRACEPARENT}
    binary_event = decode_event(envelope)
    structured_event = decode_event(
        parse_record(structured(name, INBOUND_SAMPLES[name]), STRUCTURED)
    )
    assert binary_event == structured_event


def test_decoded_inbound_values() -> None:
    status = decode_event(
        parse_record(structured("status-changed", INBOUND_SAMPLES["status-changed"]), STRUCTURED)
    )
    assert isinstance(status, StatusChanged)
    assert status.percent_complete == 42.5
    assert status.milestones is not None
    assert status.milestones[1].due == date(2026, 6, 15)
    project = decode_data(
        parse_record(structured("project-started", INBOUND_SAMPLES["project-started"]), STRUCTURED),
        ProjectStarted,
    )
    assert project.budget == 1_200_000.0
    request = decode_event(
        parse_record(
            json.dumps(INBOUND_SAMPLES["resource-requested"]).encode(),
            binary_headers("resource-requested"),
        )
    )
    assert isinstance(request, ResourceRequested)
    assert request.fte == 1.5
    strategy = decode_event(
        parse_record(
            structured("strategy-changed", INBOUND_SAMPLES["strategy-changed"]), STRUCTURED
        )
    )
    assert isinstance(strategy, StrategyChanged)
    assert strategy.directives[2].business_unit == "Wholesale"


def test_header_names_are_case_insensitive() -> None:
    headers = [(name.upper(), value) for name, value in binary_headers("status-changed")]
    envelope = parse_record(json.dumps(INBOUND_SAMPLES["status-changed"]).encode(), headers)
    assert isinstance(decode_event(envelope), StatusChanged)
    mixed = [("Content-Type", b"Application/CloudEvents+JSON")]
    assert parse_record(structured("status-changed", {}), mixed).event_name == "status-changed"


def test_structured_without_content_type_is_accepted() -> None:
    envelope = parse_record(structured("status-changed", INBOUND_SAMPLES["status-changed"]), [])
    assert isinstance(decode_event(envelope), StatusChanged)


def test_structured_mode_ignores_ce_headers() -> None:
    headers = [*STRUCTURED, ("ce_id", b"other"), ("ce_type", b"pmo.project-started")]
    envelope = parse_record(structured("status-changed", {}), headers)
    assert envelope.id == "9c1d6f1e-2f7b-4d0e-a3c5-1b2e3f4a5b6c"
    assert envelope.type == "pmo.status-changed"


def test_binary_mode_attributes_and_extensions() -> None:
    headers = binary_headers(
        "status-changed",
        ce_subject=b"PRJ-2041",
        ce_tracestate=b"vendor=1",
        ce_dataschema=b"https://pmo.example.com/schemas/status-changed.json",
        ce_partitionkey=b"PRJ-2041",
    )
    envelope = parse_record(b'{"project_id": "PRJ-2041"}', headers)
    assert envelope.subject == "PRJ-2041"
    assert envelope.data == {"project_id": "PRJ-2041"}
    assert envelope.extensions == {
        "tracestate": "vendor=1",
        "dataschema": "https://pmo.example.com/schemas/status-changed.json",
        "partitionkey": "PRJ-2041",
    }


def test_binary_mode_without_content_type_reads_json() -> None:
    headers = [(n, v) for n, v in binary_headers("status-changed") if n != "content-type"]
    envelope = parse_record(json.dumps(INBOUND_SAMPLES["status-changed"]).encode(), headers)
    assert envelope.datacontenttype is None
    assert isinstance(decode_event(envelope), StatusChanged)


def test_binary_mode_accepts_json_suffix_content_types() -> None:
    headers = [
        (n, b"application/vnd.pmo.status+json; charset=utf-8" if n == "content-type" else v)
        for n, v in binary_headers("status-changed")
    ]
    envelope = parse_record(json.dumps(INBOUND_SAMPLES["status-changed"]).encode(), headers)
    assert isinstance(decode_event(envelope), StatusChanged)


def test_binary_mode_without_value_has_no_data() -> None:
    envelope = parse_record(None, binary_headers("status-changed"))
    assert envelope.data is None
    with pytest.raises(InvalidEvent, match="data: missing"):
        decode_event(envelope)


def test_structured_extension_values_become_text() -> None:
    envelope = parse_record(
        structured("status-changed", {}, sampled=True, sequence=42, tracestate=None), STRUCTURED
    )
    assert envelope.extensions == {"sampled": "true", "sequence": "42"}


def test_trace_context_header_fills_in_missing_extension() -> None:
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [*STRUCTURED, ("traceparent", other.encode()), ("tracestate", b"a=b")]
    with_extension = parse_record(
        structured("status-changed", {}, traceparent=TRACEPARENT), headers
    )
    assert with_extension.extensions == {"traceparent": TRACEPARENT, "tracestate": "a=b"}
    without = parse_record(structured("status-changed", {}), headers)
    assert without.extensions["traceparent"] == other


def test_time_keeps_its_offset() -> None:
    envelope = parse_record(
        structured("status-changed", {}, time="2026-06-30T20:05:12+02:00"), STRUCTURED
    )
    assert envelope.time is not None
    assert envelope.time.utcoffset() == timedelta(hours=2)
    assert parse_record(structured("status-changed", {}, time=None), STRUCTURED).time is None


# --- interoperability with the official SDK ---------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_reads_what_the_official_sdk_writes(mode: str) -> None:
    event = CloudEvent(
        {
            "type": "pmo.status-changed",
            "source": "urn:erp:sap-s4:prod",
            "datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
        },
        INBOUND_SAMPLES["status-changed"],
    )
    write = sdk_kafka.to_binary_event if mode == "binary" else sdk_kafka.to_structured_event
    message = write(event)
    envelope = parse_record(message.value, list(message.headers.items()))
    assert envelope.id == event.get_id()
    assert envelope.time == event.get_time()
    assert envelope.extensions == {"traceparent": TRACEPARENT}
    assert isinstance(decode_event(envelope), StatusChanged)


def test_the_official_sdk_reads_what_we_write() -> None:
    value, headers = to_structured(OUTBOUND_SAMPLES[3], source="urn:pmo:monitoring")
    message = sdk_kafka.KafkaMessage(headers=dict(headers), key=None, value=value)
    event = sdk_kafka.from_kafka(message, JSONFormat())
    assert event.get_type() == "pmo.project-at-risk"
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["severity"] == "red"


# --- outbound round trip --------------------------------------------------------------------------


def test_outbound_samples_cover_every_outbound_event() -> None:
    assert {sample.event_name for sample in OUTBOUND_SAMPLES} == set(OUTBOUND_EVENTS)


@pytest.mark.parametrize("sample", OUTBOUND_SAMPLES, ids=lambda sample: sample.event_name)
def test_outbound_round_trip(sample: EventData) -> None:
    moment = datetime(2026, 11, 26, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    value, headers = to_structured(
        sample,
        source="urn:pmo:test",
        event_id="evt-1",
        time=moment,
        extensions={"traceparent": TRACEPARENT},
    )
    assert headers == [("content-type", b"application/cloudevents+json")]
    document = json.loads(value)
    assert document["time"] == "2026-11-26T08:30:00Z"
    assert document["subject"] == sample.key()
    assert document["datacontenttype"] == "application/json"

    envelope = parse_record(value, headers)
    assert (envelope.id, envelope.source, envelope.specversion) == ("evt-1", "urn:pmo:test", "1.0")
    assert envelope.type == f"pmo.{sample.event_name}"
    assert envelope.time == moment
    assert envelope.subject == sample.key()
    assert envelope.extensions == {"traceparent": TRACEPARENT}
    assert decode_event(envelope) == sample
    assert decode_data(envelope, type(sample)) == sample


def test_to_structured_defaults() -> None:
    before = datetime.now(UTC)
    value, _ = to_structured(OUTBOUND_SAMPLES[1], source="urn:pmo:registry")
    document = json.loads(value)
    assert uuid.UUID(document["id"]).version == 4
    assert before <= datetime.fromisoformat(document["time"]) <= datetime.now(UTC)
    assert document["data"]["from"] == "active"
    assert document["data"]["to"] == "on_hold"
    assert document["subject"] == "PRJ-2041"


def test_to_structured_refuses_producer_mistakes() -> None:
    sample = OUTBOUND_SAMPLES[0]
    with pytest.raises(ValueError, match="timezone-aware"):
        to_structured(sample, source="urn:pmo:x", time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="source"):
        to_structured(sample, source="")
    for name in ("trace-parent", "Traceparent", "id", "data"):
        with pytest.raises(ValueError, match="extension attribute name"):
            to_structured(sample, source="urn:pmo:x", extensions={name: "x"})


# --- rejections ------------------------------------------------------------------------------

VALID_STATUS = INBOUND_SAMPLES["status-changed"]


@pytest.mark.parametrize(
    ("value", "headers", "expected"),
    [
        pytest.param(
            b'{"specversion": "1.0", "id": "\xff"}',
            STRUCTURED,
            "value is not UTF-8 text (invalid byte at offset 30)",
            id="not-utf8",
        ),
        pytest.param(
            b'{"specversion": "1.0", "id": ',
            STRUCTURED,
            "value is not valid JSON: EOF while parsing a value at line 1 column 29",
            id="not-json",
        ),
        pytest.param(
            b'{"specversion": "1.0", "budget": NaN}',
            STRUCTURED,
            "value is not valid JSON",
            id="nan",
        ),
        pytest.param(
            b"[" * 10_000,
            STRUCTURED,
            "value is not valid JSON: recursion limit exceeded",
            id="deeply-nested",
        ),
        pytest.param(
            b'[{"specversion": "1.0"}]',
            STRUCTURED,
            "a structured CloudEvent must be a JSON object (got an array)",
            id="not-an-object",
        ),
        pytest.param(
            b'{"specversion": "1.0", "type": "pmo.status-changed"}',
            STRUCTURED,
            "missing required CloudEvents attribute(s): id, source",
            id="missing-attributes",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, id=None),
            STRUCTURED,
            "missing required CloudEvents attribute(s): id",
            id="null-id",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, id=17),
            STRUCTURED,
            "attribute 'id' must be a string (got a number)",
            id="id-not-string",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, source=""),
            STRUCTURED,
            "attribute 'source' must not be empty",
            id="empty-source",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, specversion="0.3"),
            STRUCTURED,
            "attribute 'specversion' is '0.3'; only CloudEvents 1.0 is supported",
            id="specversion",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, time="yesterday"),
            STRUCTURED,
            "attribute 'time' must be an RFC 3339 timestamp with a time zone, "
            'like 2026-11-26T09:30:00Z (got "yesterday")',
            id="bad-time",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, time="2026-06-30T18:05:12"),
            STRUCTURED,
            "attribute 'time' must be an RFC 3339 timestamp with a time zone",
            id="time-without-zone",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, subject=["PRJ-2041"]),
            STRUCTURED,
            "attribute 'subject' must be a string (got an array)",
            id="subject-not-string",
        ),
        pytest.param(
            structured("status-changed", None, data_base64="eyJhIjogMX0="),
            STRUCTURED,
            "data_base64 (binary data) is not supported; PMO events carry JSON data",
            id="data-base64",
        ),
        pytest.param(
            structured("status-changed", "42%", datacontenttype="text/plain"),
            STRUCTURED,
            "datacontenttype 'text/plain' is not JSON; PMO events carry JSON data",
            id="structured-non-json-data",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS, erp={"system": "SAP"}),
            STRUCTURED,
            "extension attribute 'erp' must be a string, number or boolean (got an object)",
            id="extension-object",
        ),
        pytest.param(
            None,
            STRUCTURED,
            "value is empty (a tombstone?); expected a JSON CloudEvent",
            id="tombstone",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS),
            [("content-type", b"application/cloudevents-batch+json")],
            "unsupported content-type 'application/cloudevents-batch+json'",
            id="batch",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS),
            [("content-type", b"application/cloudevents+avro")],
            "unsupported content-type 'application/cloudevents+avro'",
            id="avro",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [],
            "not a CloudEvent: no content-type header and no ce_specversion header; expected "
            "content-type: application/cloudevents+json (structured mode) or ce_* headers "
            "(binary mode)",
            id="plain-json",
        ),
        pytest.param(
            b"hello",
            [],
            "not a CloudEvent: no content-type header",
            id="plain-text",
        ),
        pytest.param(
            structured("status-changed", VALID_STATUS),
            [("content-type", b"application/json")],
            "not a CloudEvent: content-type 'application/json' and no ce_specversion header",
            id="structured-with-data-content-type",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [
                (n, v)
                for n, v in binary_headers("status-changed")
                if n not in ("ce_id", "ce_source")
            ],
            "missing required header(s) for binary mode: ce_id, ce_source",
            id="binary-missing-headers",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [
                (n, b"0.3" if n == "ce_specversion" else v)
                for n, v in binary_headers("status-changed")
            ],
            "header ce_specversion is '0.3'; only CloudEvents 1.0 is supported",
            id="binary-specversion",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [(n, b"" if n == "ce_type" else v) for n, v in binary_headers("status-changed")],
            "header ce_type must not be empty",
            id="binary-empty-type",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [(n, b"\xc3\x28" if n == "ce_id" else v) for n, v in binary_headers("status-changed")],
            "header 'ce_id' is not UTF-8 text",
            id="binary-header-not-utf8",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [
                (n, b"30.06.2026" if n == "ce_time" else v)
                for n, v in binary_headers("status-changed")
            ],
            "header ce_time must be an RFC 3339 timestamp with a time zone",
            id="binary-bad-time",
        ),
        pytest.param(
            b"percent_complete=40",
            binary_headers("status-changed"),
            "data (record value) is not valid JSON",
            id="binary-data-not-json",
        ),
        pytest.param(
            b"\xff\xfe4\x000\x00",
            binary_headers("status-changed"),
            "data (record value) is not UTF-8 text (invalid byte at offset 0)",
            id="binary-data-not-utf8",
        ),
        pytest.param(
            b"<status><percent>40</percent></status>",
            [
                (n, b"application/xml" if n == "content-type" else v)
                for n, v in binary_headers("status-changed")
            ],
            "binary-mode data has content-type 'application/xml'; PMO events carry JSON data",
            id="binary-non-json-content-type",
        ),
        pytest.param(
            json.dumps(VALID_STATUS).encode(),
            [*binary_headers("status-changed"), ("ce_id", b"another-id")],
            "header 'ce_id' appears twice with different values",
            id="conflicting-duplicate-header",
        ),
        pytest.param(
            structured("project-exploded", VALID_STATUS),
            STRUCTURED,
            "unknown event type 'pmo.project-exploded'; expected one of pmo.project-started, "
            "pmo.status-changed",
            id="unknown-type",
        ),
        pytest.param(
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "1",
                    "source": "urn:x",
                    "type": "com.example.status-changed",
                    "data": VALID_STATUS,
                }
            ).encode(),
            STRUCTURED,
            "unknown event type 'com.example.status-changed'",
            id="foreign-type-prefix",
        ),
        pytest.param(
            structured("status-changed", {**VALID_STATUS, "percent_complete": 140}),
            STRUCTURED,
            "data.percent_complete: must be at most 100 (got 140)",
            id="data-invalid",
        ),
        pytest.param(
            structured("status-changed", [VALID_STATUS]),
            STRUCTURED,
            "data: must be a JSON object (got [{",
            id="data-not-object",
        ),
        pytest.param(
            b'{"specversion":"1.0","id":"1","source":"urn:x","type":"pmo.status-changed"}',
            STRUCTURED,
            "data: missing; a pmo.status-changed event needs data",
            id="data-missing",
        ),
    ],
)
def test_rejections_name_the_problem(value: bytes | None, headers: Headers, expected: str) -> None:
    assert expected in rejection(value, headers)


def test_decode_event_can_be_restricted_to_a_topics_events() -> None:
    value, headers = to_structured(OUTBOUND_SAMPLES[3], source="urn:pmo:monitoring")
    envelope = parse_record(value, headers)
    with pytest.raises(InvalidEvent, match=r"unknown event type 'pmo\.project-at-risk'"):
        decode_event(envelope, INBOUND_EVENTS)


def test_identical_duplicate_headers_are_harmless() -> None:
    headers = [
        *binary_headers("status-changed"),
        ("ce_id", b"9c1d6f1e-2f7b-4d0e-a3c5-1b2e3f4a5b6c"),
    ]
    assert parse_record(json.dumps(VALID_STATUS).encode(), headers).event_name == "status-changed"


def test_reason_stays_short_for_huge_inputs() -> None:
    text = rejection(structured("status-changed", VALID_STATUS, time="9" * 100_000), STRUCTURED)
    assert len(text) < 200
    text = rejection(b"{}", [("content-type", b"text/" + b"x" * 100_000)])
    assert len(text) < 300


# --- property tests: nothing but InvalidEvent escapes ------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
header_names = st.sampled_from(
    [
        "content-type",
        "Content-Type",
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_datacontenttype",
        "CE_TRACEPARENT",
        "traceparent",
    ]
) | st.text(max_size=12)
header_values = st.sampled_from(
    [
        b"application/cloudevents+json",
        b"application/json",
        b"text/plain",
        b"1.0",
        b"pmo.status-changed",
        b"pmo.project-started",
        b"2026-06-30T18:05:12Z",
        b"",
    ]
) | st.binary(max_size=24)
headers_lists = st.lists(st.tuples(header_names, header_values), max_size=8)


def only_invalid_event(value: bytes | None, headers: Headers) -> None:
    try:
        envelope = parse_record(value, headers)
        decode_event(envelope)
    except InvalidEvent as error:
        reason = error.reason
    else:
        return
    assert reason


@settings(max_examples=400)
@given(value=st.none() | st.binary(max_size=200), headers=headers_lists)
def test_arbitrary_records_raise_only_invalid_event(value: bytes | None, headers: Headers) -> None:
    only_invalid_event(value, headers)


@settings(max_examples=300)
@given(data=json_values, headers=headers_lists)
def test_arbitrary_json_values_raise_only_invalid_event(data: Any, headers: Headers) -> None:
    only_invalid_event(json.dumps(data).encode(), headers)


context_attributes = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.sampled_from(["1.0", "0.3"]) | json_values,
        "id": st.text() | json_values,
        "source": st.text() | json_values,
        "type": st.sampled_from([f"pmo.{name}" for name in EVENTS]) | json_values,
        "time": st.sampled_from(["2026-06-30T18:05:12Z", "2026-06-30"]) | json_values,
        "subject": json_values,
        "datacontenttype": st.sampled_from(["application/json", "text/plain"]) | json_values,
        "data": json_values,
        "data_base64": json_values,
        "traceparent": json_values,
    },
)


@settings(max_examples=200)
@given(
    document=context_attributes,
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
def test_arbitrary_structured_events_raise_only_invalid_event(
    document: dict[str, Any], extra: dict[str, Any]
) -> None:
    only_invalid_event(json.dumps({**extra, **document}).encode(), STRUCTURED)


def field_values(model: type[EventData]) -> st.SearchStrategy[dict[str, Any]]:
    # Keys the model knows, so validation reaches the field and model validators.
    names = [field.alias or name for name, field in model.model_fields.items()]
    return st.dictionaries(st.sampled_from(names), json_values | st.text(), max_size=len(names))


@settings(max_examples=50)
@pytest.mark.parametrize("model", list(EVENTS.values()), ids=list(EVENTS))
@given(data=st.data())
def test_arbitrary_event_data_raises_only_invalid_event(
    model: type[EventData], data: st.DataObject
) -> None:
    payload = data.draw(field_values(model))
    envelope = Envelope(
        id="1",
        source="urn:test",
        type=f"pmo.{model.event_name}",
        specversion="1.0",
        time=None,
        subject=None,
        datacontenttype=None,
        data=payload,
        extensions={},
    )
    try:
        decode_data(envelope, model)
    except InvalidEvent as error:
        reason = error.reason
    else:
        return
    assert reason.startswith("data")
