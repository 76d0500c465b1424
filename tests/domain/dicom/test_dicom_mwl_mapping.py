"""Order -> MWL item mapping (IHE RAD TF-2 Appendix B), character sets, derived Study UID."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.charset import LATIN1, UTF8, charset_for
from radflow.domain.dicom.mwl import entry_from_state, version_of, worklist_item
from radflow.domain.dicom.uids import order_study_uid, study_uid_for_accession
from radflow.domain.order import OrderState, PersonName, Provider, Visit
from tests.factories import make_order


def state_of(order, status=OrderStatus.SCHEDULED, updated=datetime(2030, 1, 1, tzinfo=UTC)) -> OrderState:
    return OrderState(order=order, status=status, created_at=updated, updated_at=updated)


def test_item_carries_appendix_b_attributes() -> None:
    order = make_order("ACC9", mrn="MRN9", start=datetime(2030, 3, 4, 8, 15, tzinfo=UTC), station="MR02")
    order.priority = "S"
    order.visit = Visit(visit_number="V123", location="WARD^12")
    order.referring_physician = PersonName(family="Referrer", given="Rae")
    order.ordering_provider = Provider(id="77", name=PersonName(family="Orderer", given="Olu"))
    order.schedule.sps_id = "SPS-9"
    order.schedule.requested_procedure_id = "RP-9"
    order.reason = "headache"
    item = worklist_item(order)
    assert item["PatientID"] == "MRN9" and item["IssuerOfPatientID"] == "HOSP"
    assert item["PatientName"] == "Testperson^Alex" and item["PatientBirthDate"] == "19800101" and item["PatientSex"] == "O"
    assert item["AccessionNumber"] == "ACC9" and item["AdmissionID"] == "V123"
    assert item["RequestedProcedureID"] == "RP-9" and item["RequestedProcedurePriority"] == "STAT"
    assert item["RequestedProcedureCodeSequence"] == [{"CodeValue": "CTHEAD", "CodingSchemeDesignator": "L",
                                                       "CodeMeaning": "CT head without contrast"}]
    assert item["ReferringPhysicianName"] == "Referrer^Rae" and item["RequestingPhysician"] == "Orderer^Olu"
    assert item["ReasonForTheRequestedProcedure"] == "headache"
    sps = item["ScheduledProcedureStepSequence"][0]
    assert sps["ScheduledStationAETitle"] == "MR02" and sps["Modality"] == "CT"
    assert (sps["ScheduledProcedureStepStartDate"], sps["ScheduledProcedureStepStartTime"]) == ("20300304", "081500")
    assert sps["ScheduledProcedureStepID"] == "SPS-9" and sps["ScheduledProcedureStepStatus"] == "SCHEDULED"
    assert sps["ScheduledProtocolCodeSequence"][0]["CodeValue"] == "CTHEAD"
    assert "SpecificCharacterSet" not in item  # plain ASCII: default repertoire


def test_defaults_for_ids_and_study_uid_are_stable() -> None:
    order = make_order("ACC10")
    item = worklist_item(order)
    assert item["RequestedProcedureID"] == "ACC10"
    assert item["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"] == "ACC10"
    uid = item["StudyInstanceUID"]
    assert uid == study_uid_for_accession("ACC10") == worklist_item(make_order("ACC10"))["StudyInstanceUID"]
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid != study_uid_for_accession("ACC11")
    assert order_study_uid("ACC10", "1.2.3") == "1.2.3"


def test_study_uid_from_the_order_wins() -> None:
    order = make_order("ACC11")
    order.study_instance_uid = "1.2.826.0.1.99"
    assert worklist_item(order)["StudyInstanceUID"] == "1.2.826.0.1.99"


def test_charset_follows_the_data() -> None:
    assert charset_for(["Plain", "ASCII"]) == ""
    assert charset_for(["Müller", "ASCII"]) == LATIN1
    assert charset_for(["Müller", "Łukasz"]) == UTF8
    assert charset_for(["山田^太郎"]) == UTF8
    latin = make_order("A1")
    latin.patient.name = PersonName(family="Ñúñez", given="José")
    assert worklist_item(latin)["SpecificCharacterSet"] == LATIN1
    cjk = make_order("A2")
    cjk.patient.name = PersonName(family="山田", given="太郎")
    assert worklist_item(cjk)["SpecificCharacterSet"] == UTF8
    desc = make_order("A3")
    desc.procedure.text = "Tête IRM"
    assert worklist_item(desc)["SpecificCharacterSet"] == LATIN1


def test_start_time_is_rendered_in_the_site_time_zone() -> None:
    order = make_order("A4", start=datetime(2030, 1, 1, 23, 30, tzinfo=UTC))
    sps = worklist_item(order, tz=ZoneInfo("Europe/Berlin"))["ScheduledProcedureStepSequence"][0]
    assert (sps["ScheduledProcedureStepStartDate"], sps["ScheduledProcedureStepStartTime"]) == ("20300102", "003000")


def test_entry_visibility_by_status() -> None:
    order = make_order("A5")
    assert entry_from_state(state_of(order)).sps_status == "SCHEDULED"
    assert entry_from_state(state_of(order, OrderStatus.IN_PROGRESS)).sps_status == "STARTED"
    for hidden in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED, OrderStatus.ACQUIRED, OrderStatus.ORDERED):
        assert not entry_from_state(state_of(order, hidden)).visible
    unscheduled = make_order("A6", scheduled=False)
    assert not entry_from_state(state_of(unscheduled)).visible
    attention = state_of(order, OrderStatus.NEEDS_ATTENTION)
    attention.status_before_attention = OrderStatus.SCHEDULED
    assert entry_from_state(attention).sps_status == "SCHEDULED"


def test_versions_compare_as_text_in_time_order() -> None:
    a = version_of(datetime(2030, 1, 1, 9, 0, 0, tzinfo=UTC))
    b = version_of(datetime(2030, 1, 1, 9, 0, 0, 1, tzinfo=UTC))
    c = version_of(datetime(2030, 1, 1, 10, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")))  # 09:00 UTC
    assert a < b and a == c
