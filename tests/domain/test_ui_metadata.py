"""The Temporal UI texts: no PHI, every refusal one line that says what to type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain import definitions as d
from radflow.domain.definitions import OrderStatus
from radflow.domain.order import Attention, LaneState, OperatorAction, OrderState
from radflow.domain.ui_metadata import (
    check_operator_action,
    current_details,
    parse_operator_action,
    static_details,
    static_summary,
    who,
)
from tests.factories import make_order


def test_summary_of_an_unscheduled_order_without_procedure_text() -> None:
    order = make_order("ACC9", scheduled=False)
    order.procedure.text = ""
    assert static_summary(order) == "CTHEAD · ACC9 · unscheduled"


def test_details_have_identifiers_and_links_but_no_patient() -> None:
    order = make_order("ACC7")
    text = static_details(order, "https://radflow.example/")
    assert "[https://radflow.example/orders/ACC7](https://radflow.example/orders/ACC7)" in text
    assert "MRN001" not in text and "Testperson" not in text and "19800101" not in text
    assert "radflow.example" not in static_details(order, "")  # no API URL, no links


@pytest.mark.parametrize(("value", "start"), [
    ({"action": "retry", "lane": "hl7"}, ""),
    ('{"action": "retry"}', ""),  # JSON typed as a string
    ("retry", "refused: expected a JSON object"),
    ([1], "refused: expected a JSON object"),
    ({"acton": "retry"}, "refused: unknown field 'acton'"),
    ({"action": None}, "refused: action: Input should be a valid string"),
    ({}, "refused: action: Field required"),
])
def test_parse_operator_action(value: object, start: str) -> None:
    action, refusal = parse_operator_action(value)
    assert (action is None) == bool(start)
    assert refusal.startswith(start) and "\n" not in refusal


@pytest.mark.parametrize(("action", "error"), [
    (OperatorAction(action="retry"), ""),
    (OperatorAction(action="skip", note="sent by fax", lane="hl7"), ""),
    (OperatorAction(action="retyr"), "refused: unknown operator action 'retyr' (use retry|skip)"),
    (OperatorAction(action="skip", note="  "), "refused: skip needs a note saying why"),
    (OperatorAction(action="retry", lane="pacs"), "refused: unknown lane 'pacs': this order's lanes are hl7, fhir"),
    (OperatorAction(action="retry", lane="fhir"), "refused: lane 'fhir' is not waiting for an operator"),
])
def test_check_operator_action(action: OperatorAction, error: str) -> None:
    error_type, refusal = check_operator_action(action, ["hl7", "fhir"], ["hl7"])
    assert refusal.startswith(error) if error else (error_type, refusal) == ("", "")
    if error:
        assert error_type in d.REFUSAL_ERROR_TYPES


def test_who_acted() -> None:
    assert who(OperatorAction(action="retry", actor="ops-jane", via="api")) == "ops-jane"
    assert who(OperatorAction(action="retry", via="api")) == "api (unauthenticated)"
    assert who(OperatorAction(action="retry")) == "temporal-ui (unauthenticated)"
    cli = "radflow CLI, OS user bob"
    assert who(OperatorAction(action="retry", actor="ops-jane", via=cli)) == "ops-jane (radflow CLI, OS user bob)"
    assert who(OperatorAction(action="retry", via=cli)) == "radflow CLI, OS user bob (unauthenticated)"


def test_current_details_say_how_to_act() -> None:
    since = datetime(2030, 1, 1, 12, tzinfo=UTC)
    state = OrderState(order=make_order("ACC5"), status=OrderStatus.REPORTED, created_at=since, updated_at=since)
    state.lanes["hl7"] = LaneState(attention=Attention(reason="ConnectionRefused: EHR down", step="hl7:report", since=since))
    text = current_details(state, {"hl7": "waiting for operator: ConnectionRefused: EHR down"},
                           last_refusal="refused: unknown operator action 'x' (use retry|skip)")
    assert text.startswith("**Status: REPORTED**")
    assert "**Needs attention: hl7**: ConnectionRefused: EHR down (since 2030-01-01 12:00)" in text
    assert '`{"action": "skip", "lane": "hl7", "note": "why"}`' in text and "radflow orders retry ACC5 --lane hl7" in text
    assert "Last refused operator action: refused: unknown operator action 'x'" in text
    assert "MRN001" not in text and "Testperson" not in text
