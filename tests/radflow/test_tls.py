"""radflow/infra/tls.py: contexts from settings, refusals of settings that cannot work, Temporal's TLSConfig."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig

from radflow.infra.settings import Settings
from radflow.infra.tls import TlsConfigError, client_context, server_context, temporal_tls
from tests.tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), server_key_password=b"correct horse")


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_plain_by_default() -> None:
    s = settings()
    assert [server_context(s, name) for name in ("mllp", "dicom", "api")] == [None, None, None]
    assert client_context(s, "ehr_mllp") is None and client_context(s, "dicom_archive") is None
    assert temporal_tls(s) is False


def test_server_context_tls12_minimum_and_client_certificate_modes(pki: Pki) -> None:
    base = dict(mllp_tls_cert=pki.server_cert, mllp_tls_key=pki.server_key, tls_key_password=SecretStr("correct horse"))
    ctx = server_context(settings(**base), "mllp")
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.verify_mode == ssl.CERT_NONE
    optional = server_context(settings(**base, mllp_tls_client_ca=pki.ca), "mllp")
    assert optional is not None and optional.verify_mode == ssl.CERT_OPTIONAL
    required = server_context(settings(**base, mllp_tls_client_ca=pki.ca, mllp_tls_require_client_cert=True,
                                       tls_min_version="1.3"), "mllp")
    assert required is not None and required.verify_mode == ssl.CERT_REQUIRED
    assert required.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(("values", "message"), [
    (dict(dicom_tls_cert="server.pem"), "RADFLOW_DICOM_TLS_CERT and RADFLOW_DICOM_TLS_KEY go together"),
    (dict(dicom_tls_client_ca="ca.pem"), "need RADFLOW_DICOM_TLS_CERT"),
    (dict(dicom_tls_cert="server.pem", dicom_tls_key="server.key", dicom_tls_require_client_cert=True),
     "REQUIRE_CLIENT_CERT needs RADFLOW_DICOM_TLS_CLIENT_CA"),
    (dict(dicom_tls_cert="server.pem", dicom_tls_key="server.key", tls_min_version="1.1"), "TLS_MIN_VERSION"),
])
def test_settings_that_cannot_work_are_refused(pki: Pki, values: dict[str, str], message: str) -> None:
    paths = {k: (pki.server_cert.parent / v if isinstance(v, str) and k != "tls_min_version" else v) for k, v in values.items()}
    with pytest.raises(TlsConfigError, match=message):
        server_context(settings(**paths), "dicom")


def test_a_wrong_key_password_is_refused_without_echoing_it(pki: Pki) -> None:
    s = settings(api_tls_cert=pki.server_cert, api_tls_key=pki.server_key, tls_key_password=SecretStr("wrong guess"))
    with pytest.raises(TlsConfigError) as err:
        server_context(s, "api")
    assert "server.key" in str(err.value) and "wrong guess" not in str(err.value)


def test_client_context_verifies_the_server(pki: Pki) -> None:
    ctx = client_context(settings(dicom_archive_tls_ca=pki.ca, dicom_archive_tls_cert=pki.client_cert,
                                  dicom_archive_tls_key=pki.client_key), "dicom_archive")
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    # On with no CA: the system store decides.
    assert client_context(settings(ehr_mllp_tls=True), "ehr_mllp") is not None


def test_temporal_tls_config_from_settings(pki: Pki, tmp_path: Path) -> None:
    only_ca = temporal_tls(settings(temporal_tls_ca=pki.ca))
    assert isinstance(only_ca, TLSConfig)
    assert only_ca.server_root_ca_cert == pki.ca.read_bytes() and only_ca.client_cert is None
    mtls = temporal_tls(settings(temporal_tls_ca=pki.ca, temporal_tls_cert=pki.client_cert, temporal_tls_key=pki.client_key))
    assert isinstance(mtls, TLSConfig)
    assert mtls.client_cert == pki.client_cert.read_bytes() and mtls.client_private_key == pki.client_key.read_bytes()
    system_roots = temporal_tls(settings(temporal_tls=True))  # e.g. Temporal Cloud with an API key
    assert isinstance(system_roots, TLSConfig) and system_roots.server_root_ca_cert is None
    with pytest.raises(TlsConfigError, match="go together"):
        temporal_tls(settings(temporal_tls_cert=pki.client_cert))


async def test_the_commands_refuse_tls_settings_that_cannot_work(pki: Pki, tmp_path: Path) -> None:
    """Each process checks its TLS settings before it connects anywhere: exit 2, the setting named."""
    import asyncio
    import os
    import sys

    async def run(command: str, **env: str) -> tuple[int, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "radflow", command, "--temporal-address", "127.0.0.1:1", cwd=tmp_path,
            env=clean | {"RADFLOW_API_AUTH": "none", "RADFLOW_DATA_DIR": str(tmp_path)} | env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(errors="replace")

    cases = {
        "mllp": ({"RADFLOW_MLLP_TLS_CERT": str(pki.server_cert)}, "RADFLOW_MLLP_TLS_CERT and RADFLOW_MLLP_TLS_KEY go together"),
        "dicom": ({"RADFLOW_DICOM_TLS_CERT": str(pki.server_cert), "RADFLOW_DICOM_TLS_KEY": str(pki.server_key),
                   "RADFLOW_DICOM_TLS_REQUIRE_CLIENT_CERT": "true"}, "needs RADFLOW_DICOM_TLS_CLIENT_CA"),
        "api": ({"RADFLOW_API_TLS_CERT": str(pki.server_cert), "RADFLOW_API_TLS_KEY": str(pki.server_key),
                 "RADFLOW_TLS_KEY_PASSWORD": "not the password"}, "cannot load certificate"),
        "worker": ({"RADFLOW_EHR_MLLP_TLS_KEY": str(pki.client_key)}, "a client key needs its certificate"),
        # the archive C-STORE runs in the DICOM gateway (its own task queue): its client settings are checked there
        "dicom ": ({"RADFLOW_DICOM_ARCHIVE_TLS_CA": str(pki.server_key.parent / "missing.pem")}, "RADFLOW_DICOM_ARCHIVE_TLS"),
    }
    for command, (env, message) in cases.items():
        code, out = await run(command.strip(), **env)
        assert code == 2 and "TLS misconfigured" in out and message in out, (command, out)
        assert "not the password" not in out
