"""Resend identity of an HL7 message: sender + MSH-10 + content with MSH-7 blanked."""

from __future__ import annotations

from radflow.domain.hl7.parse import parse_message

BASE = "MSH|^~\\&|{app}|GENHOSP|RADFLOW|RAD|{sent}||ADT^A08|C1|P|2.4\rPID|1||M1^^^H^MR||{name}"


def key(app: str = "HIS", sent: str = "20240101", name: str = "Doe^Jane") -> str:
    return parse_message(BASE.format(app=app, sent=sent, name=name)).message_key


def test_resend_with_another_send_time_has_the_same_key() -> None:
    assert key(sent="20240101") == key(sent="20240102120000")


def test_reused_control_id_with_other_content_or_sender_has_another_key() -> None:
    assert key(name="Doe^Janet") != key()
    assert key(app="HIS2") != key()
    assert key().startswith("HIS^GENHOSP:C1:")


def test_a_long_sender_is_hashed_so_the_key_stays_a_valid_update_id() -> None:
    long_app = "A" * 500
    k = key(app=long_app)
    assert len(k) < 120 and k != key(app=long_app + "B") and k == key(app=long_app, sent="1999")
