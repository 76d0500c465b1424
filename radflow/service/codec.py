"""Temporal payload encryption: AES-256-GCM with named keys, so keys can be rotated.

Every payload a radflow client or worker writes (workflow inputs, update arguments, query
answers, activity inputs and results, user metadata, failure messages) is replaced by
one whose metadata says `encoding: binary/encrypted` and which key encrypted it
(`encryption-key-id`); the Temporal server and its database only ever see ciphertext.
The first key encrypts; every key decrypts, so a new key is put first while the old ones
stay until no open history uses them (docs/security.md "Key rotation").

The key id is bound to the ciphertext as GCM associated data: relabelling a payload with
another key id fails like any other tampering.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    FailureConverter,
    PayloadCodec,
)

from radflow.infra.secret_files import KeyFileError, create_private, read_private

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
_NONCE = 12
_AAD = b"radflow-payload-v1:"
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CodecError(ValueError):
    """A payload that cannot be decrypted (typed, so the UI and logs say why)."""


class UnknownKeyId(CodecError):
    pass


class PayloadTampered(CodecError):
    pass


@dataclass(frozen=True)
class CodecKey:
    key_id: str
    secret: bytes = dataclasses.field(repr=False)


def parse_keys(text: str, source: str = "keys") -> list[CodecKey]:
    """Lines `key-id:base64-of-32-bytes`; blank lines and `#` comments ignored; first = current."""
    keys: list[CodecKey] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.partition(":")
        key_id = key_id.strip()
        where = f"{source} line {number}"
        if not sep or not _KEY_ID.match(key_id):
            raise KeyFileError(f"{where}: expected key-id:base64-32-bytes (id of letters, digits, . _ -)")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{where}: the key is not base64") from None
        if len(secret) != 32:
            raise KeyFileError(f"{where}: the key must be 32 bytes (AES-256), got {len(secret)}")
        if any(k.key_id == key_id for k in keys):
            raise KeyFileError(f"{where}: key id {key_id} appears twice")
        keys.append(CodecKey(key_id, secret))
    if not keys:
        raise KeyFileError(f"{source}: no key")
    return keys


def load_keys(path: Path | str) -> list[CodecKey]:
    return parse_keys(read_private(path, "codec keys file"), str(path))


def new_key_line(key_id: str | None = None) -> str:
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}\n"


def ensure_keys_file(path: Path | str) -> bool:
    """Create a keys file with one fresh key unless it exists (`radflow dev`); True when created."""
    header = "# radflow payload keys: key-id:base64(32 bytes); the first encrypts, all decrypt\n"
    return create_private(path, header + new_key_line())


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[CodecKey]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._current = keys[0]
        self._ciphers = {k.key_id: AESGCM(k.secret) for k in keys}
        self._encrypt = self._ciphers[self._current.key_id]

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._current.key_id
        nonce = os.urandom(_NONCE)
        sealed = self._encrypt.encrypt(nonce, payload.SerializeToString(), _AAD + key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # not ours (written before encryption was on): passed as is
        key_id = payload.metadata.get(KEY_ID_META, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyId(f"payload encrypted with key id {key_id!r}, which is not among the configured keys "
                               f"({', '.join(self._ciphers)}): add it to RADFLOW_CODEC_KEYS_FILE")
        data = payload.data
        try:
            plain = cipher.decrypt(data[:_NONCE], data[_NONCE:], _AAD + key_id.encode())
        except InvalidTag:
            raise PayloadTampered(f"payload under key id {key_id!r} fails authentication (altered or wrong key)") from None
        return Payload.FromString(plain)


def encrypted_converter(codec: PayloadCodec, base: DataConverter = pydantic_data_converter,
                        failure_converter_class: type[FailureConverter] = DefaultFailureConverterWithEncodedAttributes
                        ) -> DataConverter:
    """`base` with payloads encrypted; the failure converter must encode messages and stack traces
    (an exception message can quote a patient's name)."""
    return dataclasses.replace(base, payload_codec=codec, failure_converter_class=failure_converter_class)
