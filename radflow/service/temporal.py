"""Connecting to Temporal the one way every radflow process does (same data converter)."""

from __future__ import annotations

import dataclasses
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.failure.v1 import Failure
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError

from radflow.domain.definitions import OPERATOR_REFUSAL_TYPES, REFUSAL_ERROR_TYPES, SEARCH_ATTRIBUTES
from radflow.service.codec import EncryptionCodec, encrypted_converter, load_keys
from radflow.infra.settings import Settings
from radflow.infra.telemetry import client_interceptors, temporal_runtime
from radflow.infra.tls import temporal_tls


class RefusalFailureConverter(DefaultFailureConverter):
    """A refusal (bad operator action, invalid transition...) travels as its one-line reason only.

    The Temporal UI shows a rejected update's failure as is: with the default converter that
    includes the Python stack trace, i.e. the worker's file paths, for what is a typing mistake.
    """

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        if isinstance(exception, ApplicationError) and exception.type in REFUSAL_ERROR_TYPES:
            exception.__traceback__ = None
        super().to_failure(exception, payload_converter, failure)


log = logging.getLogger("radflow.temporal")
_warned: list[bool] = []  # say it once per process

# Every radflow client and worker uses this converter (pydantic payloads, refusals without traces).
DATA_CONVERTER = dataclasses.replace(pydantic_data_converter, failure_converter_class=RefusalFailureConverter)


class EncodedRefusalFailureConverter(RefusalFailureConverter):
    """The same, with messages and stack traces encoded (by the payload codec when it is on):
    an exception message can quote a patient's name.

    Operator refusals stay readable: the Temporal UI's update dialog shows a failure's message
    without asking the codec server ("Encoded failure" otherwise), and their text is built from
    the operator's own input and lane names only (domain/ui_metadata.py), never patient data.
    """

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)
        self._readable = RefusalFailureConverter()

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        if isinstance(exception, ApplicationError) and exception.type in OPERATOR_REFUSAL_TYPES:
            self._readable.to_failure(exception, payload_converter, failure)
            return
        super().to_failure(exception, payload_converter, failure)


def data_converter(settings: Settings) -> DataConverter:
    """Every radflow client and worker uses this: payloads encrypted when a keys file is configured."""
    if settings.codec_keys_file is None:
        if not _warned:
            _warned.append(True)
            log.warning("temporal payloads are not encrypted: PHI is stored in clear in Temporal "
                        "(set RADFLOW_CODEC_KEYS_FILE, docs/security.md)")
        return DATA_CONVERTER
    codec = EncryptionCodec(load_keys(settings.codec_keys_file))
    return encrypted_converter(codec, DATA_CONVERTER, EncodedRefusalFailureConverter)


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=temporal_tls(settings),
        api_key=settings.temporal_api_key,
        data_converter=data_converter(settings),
        # SDK metrics into this process's /metrics; tracing spans for clients and their workers (radflow/infra/telemetry.py).
        runtime=temporal_runtime(),
        interceptors=client_interceptors(),
    )


async def ensure_search_attributes(client: Client, *, assume_none: bool = False) -> list[str]:
    """Register radflow's search attributes in the client's namespace; returns the ones added.

    `assume_none` skips listing (the time-skipping test server implements add but not list).
    """
    have: set[str] = set()
    if not assume_none:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        have = set(existing.custom_attributes)
    missing = {k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in SEARCH_ATTRIBUTES if k.name not in have}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def dev_server_search_attribute_args() -> list[str]:
    """`temporal server start-dev --search-attribute Name=Type` flags for radflow's attributes."""
    types = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={types[int(key.indexed_value_type)]}"]
    return args
