"""End to end over real TCP: MLLP -> Hl7Gateway -> Temporal dev server -> real worker (acceptance 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from radflow.api.app import create_app
from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.order import PersonName
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from radflow.service.ordering import OrderService
from tests.gateways.hl7_support import Hl7Stack, ack_of, hl7_stack, stack_settings  # noqa: F401

pytestmark = pytest.mark.integration


async def test_adt_then_orm_v23_then_reports_p_f(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1001")
    [adt, nw] = await s.send(s.msg("adt_a04_v23.hl7"), s.msg("orm_o01_nw_v23.hl7"))
    assert (adt.code, adt.control_id) == ("AA", "ADT0001")
    assert (nw.code, nw.control_id) == ("AA", "ORM0001")

    # The ACK came after the durable start: the workflow answers at once.
    state = await s.state(acc)
    assert state.status == OrderStatus.SCHEDULED
    assert state.order.patient.mrn == s.acc("MRN10001") and state.order.patient.issuer == "GENHOSP"
    assert state.order.patient.name == PersonName(family="Testpatient", given="Alpha", middle="Q", suffix="Jr", prefix="Mr")
    assert state.order.procedure.code == "CTHEAD" and state.order.procedure.text == "CT head without contrast"
    assert state.order.schedule.station_ae == "CT01" and state.order.schedule.modality == "CT"
    assert state.order.schedule.start == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    assert state.order.study_instance_uid == "1.2.826.0.1.3680043.9.7777.1001"

    # The HTTP API reads the same order (workflow query behind GET /orders/{accession}).
    transport = httpx.ASGITransport(app=create_app(s.settings, s.service))
    async with httpx.AsyncClient(transport=transport, base_url="http://radflow") as api:
        body = (await api.get(f"/orders/{acc}")).raise_for_status().json()
    assert body["status"] == "SCHEDULED"
    assert (body["patient"]["mrn"], body["patient"]["issuer"]) == (s.acc("MRN10001"), "GENHOSP")
    assert body["patient"]["family_name"] == "Testpatient"
    assert (body["procedure"]["code"], body["schedule"]["station_ae"]) == ("CTHEAD", "CT01")

    # The same NW again: AA, and still one workflow for the accession.
    [again] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert again.code == "AA"
    assert await s.count(f"AccessionNumber = '{acc}'", 1) == 1

    [p] = await s.send(s.msg("oru_r01_p_v23.hl7"))
    assert p.code == "AA"
    state = await s.state(acc)
    assert state.status == OrderStatus.REPORTED and state.report.status == ReportStatus.PRELIMINARY

    [f] = await s.send(s.msg("oru_r01_f_v23.hl7"))
    assert f.code == "AA"
    state = await s.wait_status(acc, OrderStatus.COMPLETED)
    # No EHR configured (delivery answers not_configured): nobody acknowledged it, so not DELIVERED.
    assert state.status == OrderStatus.COMPLETED
    assert state.report.status == ReportStatus.FINAL and state.report.version == 2
    assert state.report.text.startswith("FINDINGS:\nNo intracranial haemorrhage.")
    timeline = await s.service.get_timeline(acc)
    reports = [e for e in timeline if e.kind == "REPORT"]
    assert [e.summary for e in reports] == ["preliminary report received", "final report received"]
    assert [e.control_id for e in reports] == ["ORU0001", "ORU0002"]
    assert reports[-1].status == OrderStatus.REPORTED
    completed = [e for e in timeline if e.kind == "COMPLETED"]
    assert len(completed) == 1 and completed[0].summary.startswith("final report completed, no destination acknowledged it")
    assert not any(e.kind == "DELIVERED" for e in timeline)

    # A resent ORU changes nothing.
    [f2] = await s.send(s.msg("oru_r01_f_v23.hl7"))
    assert f2.code == "AA"
    assert (await s.state(acc)).report.version == 2


async def test_cancel_unknown_order_is_ae_and_garbage_is_ar(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    cancel = f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|CA-{s.tag}|P|2.3\rORC|CA|NOPE{s.tag}^CPOE|NOACC{s.tag}"
    [ae] = await s.send(cancel.encode())
    assert ae.code == "AE" and ae.control_id == f"CA-{s.tag}"
    assert "unknown order" in ae.text
    [raw] = await s.send_raw(b"\x0bthis is not hl7 at all\x1c\r")
    ar = ack_of(raw)
    assert ar.code == "AR" and ar.control_id == ""
    assert b"|100^Segment sequence error^HL70357|E|" in raw


async def test_omi_o23_v251_and_corrections(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1003")
    [nw] = await s.send(s.msg("omi_o23_nw_v251.hl7"))
    assert nw.code == "AA"
    state = await s.state(acc)
    assert state.status == OrderStatus.SCHEDULED
    assert state.order.schedule.station_ae == "US01" and state.order.schedule.sps_id == "SPS1003"
    assert state.order.patient.name.family == "Tëstperson" and state.order.character_set == "UNICODE UTF-8"

    # ORUs for this order, built from the ACC1001 fixtures by re-pointing OBR-18/ORC-3.
    def for_this(name: str) -> bytes:
        return s.msg(name).replace(s.acc("ACC1001").encode(), acc.encode())

    [corrected_first] = await s.send(for_this("oru_r01_c_v251.hl7"))
    assert corrected_first.code == "AE" and "corrected report before any final report" in corrected_first.text
    state = await s.state(acc)
    assert state.report is None and state.exceptions == 1
    assert [e.kind for e in state.timeline if e.exception] == ["REPORT"]

    # The refused outcome is kept for update id HL7:ORU0003 (a resend with that MSH-10 stays AE),
    # so the sender's corrected message after the final carries a new control id.
    corrected = for_this("oru_r01_c_v251.hl7").replace(b"|ORU0003|", b"|ORU0004|")
    [f, c] = await s.send(for_this("oru_r01_f_v23.hl7"), corrected)
    assert (f.code, c.code) == ("AA", "AA")
    state = await s.wait_for(acc, lambda st: st.status == OrderStatus.COMPLETED and st.report.version == 2)
    assert state.report.status == ReportStatus.CORRECTED
    assert state.report.text == "CORRECTED: no acute findings; small old infarct."


async def test_orm_v24_latin1_declared(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(s.msg("orm_o01_nw_v24.hl7"))
    assert nw.code == "AA"
    state = await s.state(s.acc("ACC1002"))
    assert state.status == OrderStatus.SCHEDULED  # modality MR + start from OBR-27.4
    assert state.order.character_set == "8859/1" and state.order.schedule.modality == "MR"


async def test_nw_without_accession_gets_one_allocated_and_cancel_finds_it(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    placer = f"PX{s.tag}"
    nw = (f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|NW-{s.tag}|P|2.3\r"
          f"PID|1||M{s.tag}^^^GENHOSP^MR||Noacc^Nina\rORC|NW|{placer}^CPOE\rOBR|1|{placer}^CPOE||XR^XR chest^L")
    [ack] = await s.send(nw.encode())
    assert ack.code == "AA", ack.text
    accession = await s.service.accession_for_placer(placer, f"{placer}^CPOE")
    assert accession and accession.startswith(s.settings.accession_prefix)
    state = await s.state(accession)
    assert state.status == OrderStatus.ORDERED and state.order.placer_number == placer  # no schedule in the order

    [resend] = await s.send(nw.encode())
    assert resend.code == "AA"
    assert await s.service.accession_for_placer(placer, f"{placer}^CPOE") == accession

    cancel = f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|CA-{s.tag}|P|2.3\rORC|CA|{placer}^CPOE"
    [ca] = await s.send(cancel.encode())
    assert ca.code == "AA", ca.text
    assert (await s.state(accession)).status == OrderStatus.CANCELLED
    # A final report for the cancelled order is an exception, answered AE.
    oru = (f"MSH|^~\\&|RIS|GENHOSP|RADFLOW|RAD|20240301||ORU^R01|R-{s.tag}|P|2.3\r"
           f"OBR|1|{placer}^CPOE||XR|||||||||||||||||||||F\rOBX|1|TX|||late text")
    [late] = await s.send(oru.encode())
    assert late.code == "AE" and "cancelled" in late.text


async def test_status_change_and_discontinue(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1012")
    [nw] = await s.send(s.msg("orm_lf_separators.hl7"))
    assert nw.code == "AA"
    base = f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|{{ctl}}-{s.tag}|P|2.3\r"
    [sc] = await s.send((base.format(ctl="SC") + f"ORC|SC|PL1012{s.tag}^CPOE|{acc}||IP").encode())
    assert sc.code == "AA"
    assert (await s.state(acc)).status == OrderStatus.IN_PROGRESS
    [dc] = await s.send((base.format(ctl="DC") + f"ORC|DC|PL1012{s.tag}^CPOE|{acc}").encode())
    assert dc.code == "AA"
    assert (await s.state(acc)).status == OrderStatus.DISCONTINUED
    [ca] = await s.send((base.format(ctl="CA") + f"ORC|CA|PL1012{s.tag}^CPOE|{acc}").encode())
    assert ca.code == "AE"  # an order that is discontinued cannot be cancelled


async def test_adt_a08_updates_open_orders(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1001")
    [nw] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert nw.code == "AA"
    mrn = s.acc("MRN10001")
    assert await s.count(f"PatientID = '{mrn}'", 1) == 1
    [a08] = await s.send(s.msg("adt_a08_v24.hl7"))
    assert a08.code == "AA"
    state = await s.state(acc)
    assert state.order.patient.name.middle == "Quinn"
    assert any(e.kind == "PATIENT_UPDATED" and e.control_id == f"ADT0002:{acc}" for e in state.timeline)


async def test_temporal_unreachable_is_ae_never_aa(client: Client, task_queue: str, tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    nw = (b"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|DOWN1|P|2.3\r"
          b"PID|1||MDOWN^^^H^MR||Down^Dan\rORC|NW|PLDOWN\rOBR|1|PLDOWN||XR||||||||||||||ACCDOWN1")

    # 1. A client that never reached a server (lazy connect to a closed port).
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True, data_converter=pydantic_data_converter)
    closed_port = Hl7Gateway(OrderService(dead, task_queue=task_queue, rpc_timeout_s=2), settings)
    ack = ack_of(await closed_port.handle(nw))
    assert ack.code == "AE" and ack.control_id == "DOWN1"

    # 2. A server that was up when we connected and stopped since, over real MLLP.
    server = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=tmp_path / "down.log")
    await server.start()
    try:
        connected = await Client.connect(server.address, data_converter=pydantic_data_converter)
        gateway = Hl7Gateway(OrderService(connected, task_queue=task_queue, rpc_timeout_s=2), settings)
        listener = await gateway.serve("127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        server.stop()
        try:
            [raw] = await send_messages("127.0.0.1", port, [nw], timeout_s=30)
            ack = ack_of(raw)
            assert ack.code == "AE" and ack.control_id == "DOWN1"
            assert "retry later" in ack.text
        finally:
            listener.close()
            await listener.wait_closed()
    finally:
        server.stop()
