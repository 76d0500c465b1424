"""Counts failed activity attempts on the worker side (workflow code stays free of metrics).

A lane (delivery to a consumer, worklist/FHIR sync, archive check) fails when its activity does;
`final` says whether Temporal will retry it (false) or the lane now waits for an operator (true:
non-retryable, or the last attempt of its retry policy).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from radflow.infra import metrics


class ActivityMetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002
        try:
            return await super().execute_activity(input)
        except BaseException as err:
            if not _is_cancellation(err):
                info = activity.info()
                metrics.LANE_FAILURES.labels(info.activity_type, _error_type(err), str(_final(err, info)).lower()).inc()
            raise


def _is_cancellation(err: BaseException) -> bool:
    import asyncio

    from temporalio.exceptions import CancelledError

    return isinstance(err, (asyncio.CancelledError, CancelledError))


def _error_type(err: BaseException) -> str:
    # ApplicationError types are radflow's own bounded names (domain/definitions.py ErrorType).
    if isinstance(err, ApplicationError) and err.type:
        return err.type[:64]
    return type(err).__name__


def _final(err: BaseException, info: activity.Info) -> bool:
    if isinstance(err, ApplicationError) and err.non_retryable:
        return True
    policy = info.retry_policy
    if policy is None or not policy.maximum_attempts:
        return False
    if isinstance(err, ApplicationError) and err.type and err.type in (policy.non_retryable_error_types or ()):
        return True
    return info.attempt >= policy.maximum_attempts
