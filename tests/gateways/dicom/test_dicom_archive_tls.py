"""C-STORE to an archive that speaks DICOM TLS and wants radflow's client certificate: the archive
client built from settings (RADFLOW_DICOM_ARCHIVE_TLS_*) forwards the spooled study; without TLS,
or trusting another CA, nothing is confirmed and the failure is ArchiveUnreachable (retried)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE, evt

from radflow.activities.archive import ArchiveActivities
from radflow.gateways.dicom.archive_client import ArchiveUnreachable
from radflow.gateways.dicom.spool import Spool
from radflow.gateways.dicom.storage import storage_contexts
from radflow.devstack import free_port
from radflow.infra.settings import Settings
from radflow.infra.tls import server_context
from tests.dicom_synth import SyntheticStudy
from tests.gateways.dicom.test_dicom_archive_client import spool_files
from tests.tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_archive(pki: Pki) -> Iterator[tuple[int, dict[str, bytes]]]:
    received: dict[str, bytes] = {}

    def on_store(event) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    ae = AE(ae_title="ARCHIVE")
    for cx in storage_contexts():
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    archive_tls = Settings(_env_file=None, dicom_tls_cert=pki.server_cert, dicom_tls_key=pki.server_key,  # type: ignore[call-arg]
                           dicom_tls_client_ca=pki.ca, dicom_tls_require_client_cert=True)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)],
                             ssl_context=server_context(archive_tls, "dicom"))
    yield port, received
    server.shutdown()


def archive_client(port: int, tmp_path: Path, **tls: object):  # noqa: ANN201
    settings = Settings(_env_file=None, data_dir=tmp_path, dicom_archive_host="localhost", dicom_archive_port=port,  # type: ignore[call-arg]
                        dicom_archive_timeout_s=5.0, **tls)
    return ArchiveActivities(settings).client


def test_forward_over_tls_with_a_client_certificate(tls_archive, pki: Pki, tmp_path: Path) -> None:
    port, received = tls_archive
    spool = Spool(tmp_path / "spool", fsync=False)
    study = SyntheticStudy("ACCTLS2", series=[("CT", 3)], size=32)
    stored = spool_files(spool, study.write(tmp_path / "src"))
    client = archive_client(port, tmp_path, dicom_archive_tls_ca=pki.ca, dicom_archive_tls_cert=pki.client_cert,
                            dicom_archive_tls_key=pki.client_key)
    confirmed: list[str] = []
    report = client.forward(spool.instances(study.study_uid), spool.read, confirmed.append)
    assert report.stored == 3 and not report.failed and sorted(confirmed) == sorted(stored)
    assert all(raw.endswith(received[sop]) for sop, raw in stored.items())


@pytest.mark.parametrize("case", ["plain", "untrusted archive", "no client certificate"])
def test_tls_mismatches_confirm_nothing(tls_archive, pki: Pki, tmp_path: Path, case: str) -> None:
    port, received = tls_archive
    spool = Spool(tmp_path / "spool", fsync=False)
    study = SyntheticStudy("ACCTLS3", series=[("CT", 1)], size=32)
    spool_files(spool, study.write(tmp_path / "src"))
    tls = {"plain": {},
           "untrusted archive": dict(dicom_archive_tls_ca=pki.rogue_ca, dicom_archive_tls_cert=pki.client_cert,
                                     dicom_archive_tls_key=pki.client_key),
           "no client certificate": dict(dicom_archive_tls_ca=pki.ca)}[case]
    confirmed: list[str] = []
    with pytest.raises(ArchiveUnreachable):
        archive_client(port, tmp_path, **tls).forward(spool.instances(study.study_uid), spool.read, confirmed.append)
    assert confirmed == [] and received == {}
