"""Regenerates the synthetic HL7 fixtures in this folder (all names and identifiers invented).

Fields are placed by their HL7 position so the fixtures stay readable and correct:
    python tests/data/hl7/make_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def seg(name: str, fields: dict[int, str], sep: str = "|") -> str:
    last = max(fields) if fields else 0
    return sep.join([name] + [fields.get(i, "") for i in range(1, last + 1)])


def msh(fields: dict[int, str], sep: str = "|", enc: str = "^~\\&") -> str:
    # MSH-1 is the separator itself, so MSH-n sits at list position n - 1.
    last = max(fields)
    return sep.join(["MSH", enc] + [fields.get(i, "") for i in range(3, last + 1)])


def header(mtype: str, control: str, version: str, when: str, sender: str = "CPOE", charset: str = "") -> dict[int, str]:
    h = {3: sender, 4: "GENHOSP", 5: "RADFLOW", 6: "RAD", 7: when, 9: mtype, 10: control, 11: "P", 12: version}
    if charset:
        h[18] = charset
    return h


PID_ALPHA = seg("PID", {1: "1", 3: "MRN10001^^^GENHOSP^MR~99887766^^^SSA^SS", 5: "Testpatient^Alpha^Q^Jr^Mr",
                        7: "19750412", 8: "F", 11: "1 Synthetic Way^^Springfield^^00000"})

FIXTURES: dict[str, list[str]] = {
    "adt_a04_v23.hl7": [
        msh(header("ADT^A04", "ADT0001", "2.3", "20240301081500", sender="HIS")),
        seg("EVN", {1: "A04", 2: "20240301081500"}),
        PID_ALPHA,
        seg("PV1", {1: "1", 2: "O", 3: "RAD^R101^1^GENHOSP", 8: "0123^Referrer^Rita^^^Dr", 19: "V5001"}),
    ],
    "orm_o01_nw_v23.hl7": [
        msh(header("ORM^O01", "ORM0001", "2.3", "20240301090000")),
        PID_ALPHA,
        seg("PV1", {1: "1", 2: "O", 3: "RAD^R101^1", 8: "0123^Referrer^Rita^^^Dr", 19: "V5001"}),
        seg("ORC", {1: "NW", 2: "PL1001^CPOE", 3: "FL2001^RIS", 5: "SC", 7: "1^^^20240305143000^^R",
                    9: "20240301085900", 12: "0456^Orderer^Olga^M^^Dr"}),
        seg("OBR", {1: "1", 2: "PL1001^CPOE", 3: "FL2001^RIS", 4: "CTHEAD^CT head without contrast^L", 6: "20240301085500",
                    16: "0456^Orderer^Olga^M^^Dr", 18: "ACC1001", 19: "RP1001", 20: "SPS1001", 21: "CT01", 24: "CT",
                    27: "1^^^20240305143000^^S", 31: "^Headache after fall"}),
        seg("ZDS", {1: "1.2.826.0.1.3680043.9.7777.1001^RADFLOW^Application^DICOM"}),
    ],
    "orm_o01_nw_v24.hl7": [
        msh(header("ORM^O01^ORM_O01", "ORM0002", "2.4", "20240301090100+0100", charset="8859/1")),
        seg("PID", {1: "1", 3: "MRN10002^^^GENHOSP^MR", 5: "Testperson^Bruno", 7: "19600101", 8: "M"}),
        seg("PV1", {1: "1", 2: "I", 3: "WARD3^12^B", 19: "V5002"}),
        seg("ORC", {1: "NW", 2: "PL1002^CPOE", 12: "0456^Orderer^Olga"}),
        seg("OBR", {1: "1", 2: "PL1002^CPOE", 4: "MRKNEE^MR knee left^L", 18: "ACC1002", 24: "MR",
                    27: "^^^20240306100000+0100^^A", 31: "^Knee pain"}),
    ],
    "omi_o23_nw_v251.hl7": [
        msh(header("OMI^O23^OMI_O23", "OMI0001", "2.5.1", "20240301091000", charset="UNICODE UTF-8")),
        seg("PID", {1: "1", 3: "MRN10003^^^GENHOSP&1.2.3.4&ISO^MR", 5: "Tëstperson^Zoë", 7: "19900202", 8: "F"}),
        seg("PV1", {1: "1", 2: "E", 3: "ER^1^1", 19: "V5003"}),
        seg("ORC", {1: "NW", 2: "PL1003^CPOE", 3: "FL2003^RIS", 5: "SC", 9: "20240301090900", 12: "0789^Orderer^Oscar"}),
        seg("TQ1", {1: "1", 7: "20240307080000", 8: "20240307083000", 9: "S"}),
        seg("OBR", {1: "1", 2: "PL1003^CPOE", 3: "FL2003^RIS", 4: "USABD^US abdomen^L", 31: "^Abdominal pain"}),
        seg("IPC", {1: "ACC1003^RIS", 2: "RP1003", 3: "1.2.826.0.1.3680043.9.7777.1003", 4: "SPS1003",
                    5: "US^Ultrasound^DCM", 7: "US ROOM 1", 8: "US1^Room 1", 9: "US01"}),
    ],
    "oru_r01_p_v23.hl7": [
        msh(header("ORU^R01", "ORU0001", "2.3", "20240305160000", sender="DICTATION")),
        seg("PID", {1: "1", 3: "MRN10001^^^GENHOSP^MR", 5: "Testpatient^Alpha^Q"}),
        seg("OBR", {1: "1", 2: "PL1001^CPOE", 3: "FL2001^RIS", 4: "CTHEAD^CT head without contrast^L", 7: "20240305150000",
                    18: "ACC1001", 25: "P", 32: "0999&Reader&Rachel&&&Dr"}),
        seg("OBX", {1: "1", 2: "TX", 3: "&GDT^Report", 5: "Preliminary: no acute findings.", 11: "P", 14: "20240305155500"}),
    ],
    "oru_r01_f_v23.hl7": [
        msh(header("ORU^R01", "ORU0002", "2.3", "20240305170000", sender="DICTATION")),
        seg("PID", {1: "1", 3: "MRN10001^^^GENHOSP^MR", 5: "Testpatient^Alpha^Q"}),
        seg("OBR", {1: "1", 2: "PL1001^CPOE", 3: "FL2001^RIS", 4: "CTHEAD^CT head without contrast^L", 7: "20240305150000",
                    18: "ACC1001", 25: "F", 32: "0999&Reader&Rachel&&&Dr"}),
        seg("OBX", {1: "1", 2: "TX", 3: "&GDT^Report", 5: "FINDINGS:~No intracranial haemorrhage.", 11: "F", 14: "20240305165500"}),
        seg("OBX", {1: "2", 2: "FT", 3: "&GDT^Report", 5: "Ventricles normal.\\.br\\Sizes: 3\\S\\4 cm \\T\\ stable\\F\\ok.", 11: "F"}),
        seg("OBX", {1: "3", 2: "ST", 3: "&IMP^Impression", 5: "IMPRESSION: Normal study.", 11: "F"}),
        seg("OBX", {1: "4", 2: "NM", 3: "&VOL^Volume", 5: "12.5", 6: "mL", 11: "F"}),
    ],
    "oru_r01_c_v251.hl7": [
        msh(header("ORU^R01^ORU_R01", "ORU0003", "2.5.1", "20240306090000", sender="DICTATION")),
        seg("PID", {1: "1", 3: "MRN10001^^^GENHOSP^MR", 5: "Testpatient^Alpha^Q"}),
        seg("ORC", {1: "RE", 2: "PL1001^CPOE", 3: "ACC1001^RIS"}),
        seg("OBR", {1: "1", 2: "PL1001^CPOE", 3: "ACC1001^RIS", 4: "CTHEAD^CT head without contrast^L", 7: "20240305150000",
                    25: "C", 32: "0999&Reader&Rachel"}),
        seg("OBX", {1: "1", 2: "TX", 3: "&GDT^Report", 5: "CORRECTED: no acute findings; small old infarct.", 11: "C",
                    14: "20240306085500+0000"}),
    ],
    "adt_a08_v24.hl7": [
        msh(header("ADT^A08^ADT_A01", "ADT0002", "2.4", "20240302100000", sender="HIS")),
        seg("EVN", {1: "A08", 2: "20240302100000"}),
        seg("PID", {1: "1", 3: "MRN10001^^^GENHOSP^MR", 5: "Testpatient^Alpha^Quinn", 7: "19750412", 8: "F"}),
        seg("PV1", {1: "1", 2: "O"}),
    ],
    "adt_a40_v25.hl7": [
        msh(header("ADT^A40^ADT_A39", "ADT0003", "2.5", "20240303110000", sender="HIS")),
        seg("EVN", {1: "A40", 2: "20240303110000"}),
        seg("PID", {1: "1", 3: "MRN20002^^^GENHOSP^MR", 5: "Testmerged^Casey", 7: "19820707", 8: "M"}),
        seg("MRG", {1: "MRN10009^^^GENHOSP^MR"}),
    ],
    "custom_delimiters_v24.hl7": [
        msh(header("ORM$O01", "ORM0009", "2.4", "20240301092000"), sep="#", enc="$%\\!"),
        seg("PID", {1: "1", 3: "MRN10010$$$GENHOSP$MR", 5: "Delimiter\\S\\Test$Dee", 7: "19700101", 8: "O"}, sep="#"),
        seg("ORC", {1: "NW", 2: "PL1010$CPOE"}, sep="#"),
        seg("OBR", {1: "1", 2: "PL1010$CPOE", 4: "XRCHEST$XR chest$L", 18: "ACC1010", 31: "$hat\\S\\ and pipe\\F\\"}, sep="#"),
    ],
    "zsegments_v23.hl7": [
        msh(header("ORM^O01", "ORM0011", "2.3", "20240301093000")),
        seg("PID", {1: "1", 3: "MRN10011^^^GENHOSP^MR", 5: "Zedd^Zoe", 7: '""', 8: "U"}),
        seg("PV1", {1: "1", 2: '""'}),
        seg("ZPI", {1: "custom", 2: "stuff"}),
        seg("ORC", {1: "NW", 2: "PL1011^CPOE"}),
        seg("OBR", {1: "1", 2: "PL1011^CPOE", 4: "CTCHEST^CT chest^L", 16: '""', 18: "ACC1011"}),
        seg("ZDS", {1: "1.2.826.0.1.3680043.9.7777.1011^RADFLOW^Application^DICOM"}),
        seg("ZXX", {1: "more", 2: "custom"}),
    ],
}


def main() -> None:
    for name, segments in FIXTURES.items():
        (HERE / name).write_bytes(("\r".join(segments) + "\r").encode("utf-8"))
    latin = [
        msh(header("ADT^A08", "ADT0004", "2.3", "20240302120000", sender="HIS")),
        seg("PID", {1: "1", 3: "MRN10004^^^GENHOSP^MR", 5: "Müller^Jürgen^Ædelbert", 7: "19550505", 8: "M"}),
    ]
    (HERE / "adt_a08_latin1_no_msh18.hl7").write_bytes(("\r".join(latin) + "\r").encode("latin-1"))
    lf = [
        msh(header("ORM^O01", "ORM0012", "2.3", "20240301094000")),
        seg("PID", {1: "1", 3: "MRN10012^^^GENHOSP^MR", 5: "Linefeed^Lee"}),
        seg("ORC", {1: "NW", 2: "PL1012^CPOE"}),
        seg("OBR", {1: "1", 2: "PL1012^CPOE", 4: "CTHEAD^CT head^L", 18: "ACC1012"}),
    ]
    (HERE / "orm_lf_separators.hl7").write_bytes(("\n".join(lf) + "\n").encode())
    batch = [
        "FHS|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240302130000",
        "BHS|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240302130000||||BATCH77",
        msh(header("ADT^A04", "ADTB001", "2.3", "20240302130000", sender="HIS")),
        seg("PID", {1: "1", 3: "MRN10021^^^GENHOSP^MR", 5: "Batchone^Bea"}),
        msh(header("ADT^A08", "ADTB002", "2.3", "20240302130001", sender="HIS")),
        seg("PID", {1: "1", 3: "MRN10022^^^GENHOSP^MR", 5: "Batchtwo^Bob"}),
        "BTS|2",
        "FTS|1",
    ]
    (HERE / "batch_adt.hl7").write_bytes(("\r\n".join(batch) + "\r\n").encode())


if __name__ == "__main__":
    main()
