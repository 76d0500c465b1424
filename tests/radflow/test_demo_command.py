"""`radflow demo` as a user runs it: a separate process on free ports, with the real destinations
(EHR MLLP sink, the Medplum-based FHIR server, Orthanc), one order through every protocol.

`--once` (headless) is the CI form: every step printed, exit 0 once the order is DELIVERED, and
the FHIR server's store (written on stop) holds the final report. Without it the stack stays up
for exploring: the printed links answer, then Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.radflow_process import RadflowProcess, free_ports, port_flags

pytestmark = pytest.mark.integration

STEPS = [
    r"\[1/9\] HL7 ADT\^A04 over MLLP .*: AA$",
    r"\[2/9\] HL7 ORM\^O01 NW over MLLP .*: AA$",
    r"\[3/9\] DICOM MWL C-FIND by accession from DEMOCT1: 1 worklist item \(station DEMOCT1, CT, step \w+, study [\d.]+\)$",
    r"\[4/9\] DICOM MPPS N-CREATE IN PROGRESS from DEMOCT1: success$",
    r"\[5/9\] DICOM C-STORE of 5 synthetic CT images in 2 series: 5 of 5 success$",
    r"\[6/9\] DICOM MPPS N-SET COMPLETED referencing 5 images: success$",
    r"\[7/9\] HL7 ORU\^R01 preliminary report \(OBR-25 P\) over MLLP: AA$",
    r"\[8/9\] HL7 ORU\^R01 final report \(OBR-25 F\) over MLLP: AA$",
    r"\[9/9\] order DELIVERED: every report destination acknowledged the final report$",
]


def _assert_story(output: str) -> tuple[str, str]:
    """Every step in order, the destinations' receipts; returns (accession, study UID)."""
    lines = output.splitlines()
    at = 0
    for pattern in STEPS:
        found = next((i for i in range(at, len(lines)) if re.search(pattern, lines[i])), None)
        printed = "\n".join(line for line in lines if line.startswith(("[", "radflow demo")))
        assert found is not None, f"step {pattern!r} not printed (in order); steps printed:\n{printed}\n\n{output[-5000:]}"
        at = found + 1
    acc = re.search(r"radflow demo: one order, accession (\w+),", output).group(1)  # type: ignore[union-attr]
    study = re.search(r"\[3/9\] .* study ([\d.]+)\)", output).group(1)  # type: ignore[union-attr]
    assert re.search(rf"EHR sink  <- ORU\^R01\S* for {acc} \(OBR-25 P\).*answered AA", output), output[-3000:]
    assert re.search(rf"EHR sink  <- ORU\^R01\S* for {acc} \(OBR-25 F\).*answered AA", output), output[-3000:]
    assert "EHR sink received ORU^R01 P then F" in output
    assert re.search(r"order ACQUIRED: 5 instances", output)
    assert "Orthanc holds 5 instances of the study" in output
    assert "FHIR server: DiagnosticReport final" in output
    assert f"radflow demo: order {acc} ended DELIVERED." in output
    assert "Traceback" not in output and "level=ERROR" not in output, output[-5000:]
    return acc, study


async def test_radflow_demo_once_drives_one_order_to_delivered(tmp_path: Path) -> None:
    ports = free_ports("temporal", "mllp", "api", "dicom")
    data = tmp_path / "data"
    proc = await RadflowProcess(["demo", "--once", "--headless", "--data-dir", str(data), *port_flags(ports)]).start()
    code = await proc.wait(timeout_s=240)
    assert code == 0, proc.output[-5000:]
    acc, _ = _assert_story(proc.output)

    # The FHIR server wrote its store when the demo stopped it: the report is there, final.
    store = json.loads((data / "fhir-server" / "store.json").read_text())
    reports = [r["versions"][-1] for r in store["types"]["DiagnosticReport"].values()]
    mine = [r for r in reports if any(i.get("value") == acc for i in r.get("identifier", []))]
    assert [r["status"] for r in mine] == ["final"], mine


async def test_radflow_demo_stays_up_for_exploring_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = free_ports("temporal", "ui", "mllp", "api", "dicom")
    proc = await RadflowProcess(["demo", "--data-dir", str(tmp_path / "data"), *port_flags(ports)]).start()
    try:
        await proc.wait_for_line("Everything keeps running", timeout_s=240)
        acc, study = _assert_story(proc.output)
        link = f"http://127.0.0.1:{ports['ui']}/namespaces/default/workflows/order-{acc}"
        assert f"follow it in the Temporal UI: {link}" in proc.output
        orthanc = re.search(r"Orthanc \(PACS\)\s+\S+\s+web (http://127\.0\.0\.1:\d+)/app/explorer\.html", proc.output)
        fhir = re.search(r"FHIR server\s+(http://127\.0\.0\.1:\d+/fhir/R4)", proc.output)
        assert orthanc and fhir, proc.output[:3000]
        async with httpx.AsyncClient(timeout=15) as http:
            order = (await http.get(f"http://127.0.0.1:{ports['api']}/orders/{acc}")).json()
            assert order["status"] == "DELIVERED" and order["study"]["instance_count"] == 5, order
            assert (await http.get(link)).status_code == 200
            found = await http.post(f"{orthanc.group(1)}/tools/find",
                                    json={"Level": "Instance", "Query": {"StudyInstanceUID": study}})
            assert len(found.json()) == 5
            bundle = (await http.get(f"{fhir.group(1)}/DiagnosticReport",
                                     params={"identifier": f"http://radflow.example/fhir/accession|{acc}"})).json()
            assert [e["resource"]["status"] for e in bundle.get("entry", [])] == ["final"], bundle
    finally:
        code = await proc.stop()
    assert code == 0, proc.output[-3000:]
    for name in ("ehr-sink", "fhir-server", "orthanc", "temporal-dev-server", "demo-drive"):
        assert f"msg=stopped component={name}" in proc.output, name
