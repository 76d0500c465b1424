"""The HL7 v2 messages `radflow demo` sends for its one order (a made-up patient, no real data).

v2.4 ORM^O01 with the accession in OBR-18, the station AE title in OBR-21, the modality in
OBR-24 and the start in OBR-27.4 (radflow's default field conventions, radflow.infra.settings);
ORU^R01 with the result status in OBR-25 and the report text in OBX-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class DemoOrder:
    accession: str
    mrn: str
    station: str = "DEMOCT1"
    modality: str = "CT"
    procedure: str = "CTHEAD^CT head without contrast^L"
    family: str = "Demo"
    given: str = "Patient"
    birth_date: str = "19700101"

    @property
    def start(self) -> str:
        return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _msh(kind: str, control_id: str) -> str:
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"MSH|^~\\&|DEMO-EHR|DEMOHOSP|RADFLOW|RAD|{now}||{kind}|{control_id}|P|2.4"


def _pid(o: DemoOrder) -> str:
    return f"PID|1||{o.mrn}^^^DEMOHOSP^MR||{o.family}^{o.given}||{o.birth_date}|O"


def adt_a04(o: DemoOrder, control_id: str) -> bytes:
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return "\r".join([_msh("ADT^A04", control_id), f"EVN|A04|{now}", _pid(o), "PV1|1|O|RAD^1"]).encode() + b"\r"


def orm_nw(o: DemoOrder, control_id: str) -> bytes:
    obr = ["OBR", "1", f"PL{o.accession}^DEMO-EHR", "", o.procedure] + [""] * 13
    obr += [o.accession, "", "", o.station, "", "", o.modality, "", "", f"^^^{o.start}^^R"]
    return "\r".join([
        _msh("ORM^O01", control_id),
        _pid(o),
        "PV1|1|O|RAD^1|||||0123^Referrer^Demo",
        f"ORC|NW|PL{o.accession}^DEMO-EHR|||||||||0456^Orderer^Demo",
        "|".join(obr),
    ]).encode() + b"\r"


def oru(o: DemoOrder, status: str, control_id: str, text: str) -> bytes:
    """ORU^R01 with OBR-25 = status (P preliminary, F final)."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    obr = ["OBR", "1", f"PL{o.accession}^DEMO-EHR", "", o.procedure, "", "", now] + [""] * 10
    obr += [o.accession] + [""] * 6 + [status]
    return "\r".join([
        _msh("ORU^R01", control_id),
        _pid(o),
        "|".join(obr),
        f"OBX|1|TX|&GDT^Report||{text}||||||{status}",
    ]).encode() + b"\r"
