"""The payload codec: round trip, rotation, unknown key, tampering, key files."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from temporalio.api.common.v1 import Payload

from radflow.service.codec import (
    CodecKey,
    EncryptionCodec,
    PayloadTampered,
    UnknownKeyId,
    encrypted_converter,
    ensure_keys_file,
    load_keys,
    parse_keys,
)
from radflow.infra.secret_files import KeyFileError
from radflow.domain.order import Patient, PersonName


def key(key_id: str) -> CodecKey:
    return CodecKey(key_id, os.urandom(32))


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_hides_the_bytes_and_names_the_key() -> None:
    codec = EncryptionCodec([key("k1")])
    [sealed] = await codec.encode([plain('{"name": "Zyxwvut^Quorra"}')])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert b"Zyxwvut" not in sealed.SerializeToString()
    [back] = await codec.decode([sealed])
    assert back == plain('{"name": "Zyxwvut^Quorra"}')


async def test_the_converter_encrypts_models_and_failure_messages() -> None:
    converter = encrypted_converter(EncryptionCodec([key("k1")]))
    patient = Patient(mrn="MRN-UNIQUE-1", name=PersonName(family="Zyxwvut"))
    [payload] = await converter.encode([patient])
    assert b"Zyxwvut" not in payload.SerializeToString() and b"MRN-UNIQUE-1" not in payload.SerializeToString()
    assert await converter.decode([payload], [Patient]) == [patient]

    from temporalio.api.failure.v1 import Failure
    from temporalio.exceptions import ApplicationError

    failure = Failure()
    await converter.encode_failure(ApplicationError("patient Zyxwvut^Quorra refused", type="InvalidEvent"), failure)
    assert b"Zyxwvut" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert "Zyxwvut" in str(decoded)


async def test_rotation_first_key_encrypts_every_key_decrypts() -> None:
    old, new = key("old"), key("new")
    [by_old] = await EncryptionCodec([old]).encode([plain("a")])
    rotated = EncryptionCodec([new, old])
    [by_new] = await rotated.encode([plain("b")])
    assert by_new.metadata["encryption-key-id"] == b"new"
    assert await rotated.decode([by_old, by_new]) == [plain("a"), plain("b")]
    with pytest.raises(UnknownKeyId, match="'new'"):
        await EncryptionCodec([old]).decode([by_new])


async def test_tampered_or_relabelled_payloads_are_refused() -> None:
    k1, k2 = key("k1"), key("k2")
    codec = EncryptionCodec([k1, k2])
    [sealed] = await codec.encode([plain("report text")])
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadTampered):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"k2"}, data=sealed.data)
    with pytest.raises(PayloadTampered):
        await codec.decode([relabelled])


async def test_payloads_not_encrypted_pass_through() -> None:
    codec = EncryptionCodec([key("k1")])
    assert await codec.decode([plain("from before encryption")]) == [plain("from before encryption")]


def test_keys_file_format() -> None:
    a, b = base64.b64encode(b"a" * 32).decode(), base64.b64encode(b"b" * 32).decode()
    keys = parse_keys(f"# comment\n\nk2:{b}\n k1 : {a} \n")
    assert [k.key_id for k in keys] == ["k2", "k1"] and keys[0].secret == b"b" * 32
    for bad, why in [("", "no key"), ("k1", "expected key-id"), ("k1:!!!", "not base64"),
                     (f"k1:{base64.b64encode(b'x' * 16).decode()}", "32 bytes"), (f"k1:{a}\nk1:{b}", "twice"),
                     (f"bad id:{a}", "expected key-id")]:
        with pytest.raises(KeyFileError, match=why):
            parse_keys(bad)


def test_keys_file_must_be_owner_only(tmp_path) -> None:
    path = tmp_path / "keys"
    assert ensure_keys_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert ensure_keys_file(path) is False and path.read_text() == first  # reused, never replaced
    assert len(load_keys(path)) == 1
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by group/others.*chmod 600"):
        load_keys(path)
    with pytest.raises(KeyFileError, match="No such file"):
        load_keys(tmp_path / "missing")


def test_a_server_refuses_a_readable_keys_file_with_the_reason(tmp_path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "keys"
    ensure_keys_file(path)
    path.chmod(0o644)
    env = os.environ | {"RADFLOW_API_AUTH": "none", "RADFLOW_CODEC_KEYS_FILE": str(path), "RADFLOW_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "radflow", "api", "--port", "1"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"radflow: codec keys file {path} is readable by group/others" in done.stderr
    assert "Traceback" not in done.stderr


async def test_radflow_converter_with_keys_encrypts_failures_and_keeps_refusals_traceless(tmp_path) -> None:
    from temporalio.api.failure.v1 import Failure
    from temporalio.exceptions import ApplicationError

    from radflow.infra.settings import Settings
    from radflow.service.temporal import data_converter

    ensure_keys_file(tmp_path / "keys")
    converter = data_converter(Settings(_env_file=None, codec_keys_file=tmp_path / "keys"))
    try:
        raise ApplicationError("order of Zyxwvut^Quorra is closed", type="OrderClosed", non_retryable=True)
    except ApplicationError as err:
        refused = err
    failure = Failure()
    await converter.encode_failure(refused, failure)
    assert b"Zyxwvut" not in failure.SerializeToString()
    assert failure.encoded_attributes.metadata["encoding"] == b"binary/encrypted"
    decoded = await converter.decode_failure(failure)
    assert "Zyxwvut" in decoded.message
    assert decoded.failure is not None and decoded.failure.stack_trace == ""  # a refusal is its reason only
