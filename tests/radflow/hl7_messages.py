"""Synthetic HL7 v2.3 messages for CLI and restart tests (no real patients)."""

from __future__ import annotations


def _msh(kind: str, control_id: str) -> str:
    return f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20300301090000||{kind}|{control_id}|P|2.3"


def _pid(mrn: str) -> str:
    return f"PID|1||{mrn}^^^GENHOSP^MR||Testpatient^Beta||19800202|M"


def adt_a04(mrn: str, control_id: str) -> str:
    return "\r".join([_msh("ADT^A04", control_id), "EVN|A04|20300301090000", _pid(mrn), "PV1|1|O"]) + "\r"


def orm_nw(accession: str, mrn: str, control_id: str, placer: str | None = None) -> str:
    placer = placer or f"PL{accession}"
    return "\r".join([
        _msh("ORM^O01", control_id),
        _pid(mrn),
        "PV1|1|O",
        f"ORC|NW|{placer}^CPOE||||||||||0456^Orderer^Olga",
        f"OBR|1|{placer}^CPOE||CTHEAD^CT head without contrast^L||||||||||||||{accession}|||||||CT",
    ]) + "\r"


def orm_ca(accession: str, mrn: str, control_id: str) -> str:
    return "\r".join([
        _msh("ORM^O01", control_id),
        _pid(mrn),
        f"ORC|CA|PL{accession}^CPOE",
        f"OBR|1|PL{accession}^CPOE||CTHEAD^CT head without contrast^L||||||||||||||{accession}",
    ]) + "\r"


def oru(accession: str, mrn: str, status: str, control_id: str, text: str = "No acute findings.") -> str:
    return "\r".join([
        _msh("ORU^R01", control_id),
        _pid(mrn),
        f"OBR|1|PL{accession}^CPOE||CTHEAD^CT head without contrast^L|||20300301100000|||||||||||{accession}|||||||{status}",
        f"OBX|1|TX|&GDT^Report||{text}||||||{status}",
    ]) + "\r"


def unsupported(control_id: str) -> str:
    return _msh("QRY^Q01", control_id) + "\r"
