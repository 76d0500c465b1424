"""Regenerates the synthetic real-world-feed reproductions of issue 7 (items 3, 4, 5, 7, 11).

All names and identifiers are invented. Segments are joined by CR; files that reproduce a
bare CR inside a field contain one on purpose.
    python tests/data/hl7/feeds/make_feeds.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def adt(event: str, control: str, *segments: str, when: str = "20240302100000", sender: str = "HIS") -> list[str]:
    return [f"MSH|^~\\&|{sender}|GENHOSP|RADFLOW|RAD|{when}||ADT^{event}|{control}|P|2.5", f"EVN|{event}|{when}", *segments]


def orm(control: str, *segments: str, when: str = "20240302100000", modes: str = "") -> list[str]:
    return [f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|{when}||ORM^O01|{control}|P|2.5{modes}", *segments]


def oru(control: str, *segments: str) -> list[str]:
    return ["MSH|^~\\&|DICTATION|GENHOSP|RADFLOW|RAD|20240305170000||ORU^R01|" + control + "|P|2.5",
            "PID|1||MRN10001^^^GENHOSP^MR", *segments]


def obr(placer: str, accession: str, status: str = "", procedure: str = "CTHEAD^CT head without contrast^L") -> str:
    fields = {1: "1", 2: f"{placer}^CPOE", 4: procedure, 18: accession, 25: status}
    return "|".join(["OBR"] + [fields.get(i, "") for i in range(1, max(fields) + 1)])


XO = ("PID|1||MRN10001^^^GENHOSP^MR", "ORC|XO|PL1001^CPOE")

FEEDS: dict[str, list[str]] = {
    # 7.3 null semantics
    "a08_empty_fields.hl7": adt("A08", "F0001", "PID|1||MRN10001^^^GENHOSP^MR||||||", "PV1|1|O"),
    "a08_sex_deleted.hl7": adt("A08", "F0002", 'PID|1||MRN10001^^^GENHOSP^MR|||||""'),
    "a40_identifier_only.hl7": [*adt("A40", "F0003", "PID|1||MRN20002^^^GENHOSP^MR", "MRG|MRN10001^^^GENHOSP^MR")],
    "xo_empty_sex.hl7": orm("F0004", *XO, obr("PL1001", "ACC1001", procedure="CTCHEST^CT chest^L")),
    # 7.4 reused MSH-10: two different messages, then a resend of the first with another MSH-7
    "xo_reused_msh10_first.hl7": orm("F0005", *XO, obr("PL1001", "ACC1001", procedure="CTCHEST^CT chest^L")),
    "xo_reused_msh10_second.hl7": orm("F0005", *XO, obr("PL1001", "ACC1001", procedure="CTABD^CT abdomen^L")),
    "xo_reused_msh10_first_resent.hl7": orm("F0005", *XO, obr("PL1001", "ACC1001", procedure="CTCHEST^CT chest^L"),
                                            when="20240302100500"),
    # 7.5 atomic messages
    "oru_msa_inside.hl7": oru("F0006", obr("PL1001", "ACC1001", "P"), "MSA|AA|ORM0001",
                              "OBX|1|TX|&GDT^Report||Preliminary: no acute findings.||||||P"),
    "oru_two_orders.hl7": oru("F0007", obr("PL1001", "ACC1001", "F"), "OBX|1|TX|&GDT^Report||Final one.||||||F",
                              obr("PL1002", "ACC1002", "F"), "OBX|1|TX|&GDT^Report||Final two.||||||F"),
    # 7.7 a bare CR inside a field
    "a08_bare_cr_in_pid5.hl7": adt("A08", "F0008", "PID|1||MRN10001^^^GENHOSP^MR||Testpatient^Al", "pha||19750412|F"),
    "oru_bare_cr_in_obx5.hl7": oru("F0009", obr("PL1001", "ACC1001", "P"),
                                   "OBX|1|TX|&GDT^Report||Preliminary: first line", "second line||||||P"),
    # 7.11 enhanced acknowledgment mode
    "nw_enhanced_al_ne.hl7": orm("F0010", "PID|1||MRN10001^^^GENHOSP^MR||Testpatient^Alpha||19750412|F",
                                 "ORC|NW|PL1001^CPOE", obr("PL1001", "ACC1001"), modes="|||AL|NE"),
}


def main() -> None:
    for name, segments in FEEDS.items():
        (HERE / name).write_bytes("\r".join(segments).encode("ascii") + b"\r")


if __name__ == "__main__":
    main()
