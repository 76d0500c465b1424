"""Failures as the Temporal UI receives them: refusals without stack traces; with payload
encryption on, operator refusals readable and everything else encoded."""

from __future__ import annotations

from temporalio.api.failure.v1 import Failure
from temporalio.converter import default
from temporalio.exceptions import ApplicationError

from radflow.domain import definitions as d
from radflow.service.temporal import EncodedRefusalFailureConverter, RefusalFailureConverter


def _failure(converter: RefusalFailureConverter, message: str, error_type: str) -> Failure:
    try:
        raise ApplicationError(message, type=error_type, non_retryable=True)
    except ApplicationError as err:
        failure = Failure()
        converter.to_failure(err, default().payload_converter, failure)
        return failure


def test_refusals_carry_no_stack_trace_other_failures_do() -> None:
    plain = RefusalFailureConverter()
    refused = _failure(plain, "refused: unknown operator action 'x' (use retry|skip)", d.ErrorType.OPERATOR_REFUSED)
    assert refused.message.startswith("refused: unknown operator action") and refused.stack_trace == ""
    assert _failure(plain, "boom", "SomethingBroke").stack_trace != ""


def test_with_encryption_operator_refusals_stay_readable_the_rest_is_encoded() -> None:
    encoded = EncodedRefusalFailureConverter()
    refused = _failure(encoded, "refused: the order is not waiting for an operator", d.ErrorType.NO_ATTENTION_PENDING)
    assert refused.message == "refused: the order is not waiting for an operator" and refused.stack_trace == ""
    # An event refusal may quote patient data: encoded like any other failure.
    other = _failure(encoded, "images PatientID MRN123 differ from the order's", d.ErrorType.INVALID_TRANSITION)
    assert other.message == "Encoded failure" and "MRN123" not in str(other.message)
