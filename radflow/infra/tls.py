"""TLS contexts built from settings, the one way every radflow listener and client does it.

Listeners (`mllp`, `dicom`, `api`) serve TLS when `<name>_tls_cert` and `<name>_tls_key` are set,
plain TCP otherwise (`radflow dev`'s loopback default). Clients (`ehr_mllp`, `dicom_archive`) use
TLS when `<name>_tls` is on or a CA / client certificate is given. Both sides: TLS 1.2 or later
(IHE ATNA secure node), the system's default cipher policy, and a key password only from
RADFLOW_TLS_KEY_PASSWORD (never a flag: argv is readable by every local user).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from temporalio.service import TLSConfig

from radflow.infra.settings import Settings

LISTENERS = ("mllp", "dicom", "api")
CLIENTS = ("ehr_mllp", "dicom_archive")


class TlsConfigError(ValueError):
    """TLS settings that cannot work (a key without a certificate, required client certs without a CA...)."""


def _get(settings: Settings, name: str):  # noqa: ANN202 - one of the settings' field types
    return getattr(settings, name)


def _password(settings: Settings) -> str | None:
    return settings.tls_key_password.get_secret_value() or None


def _minimum(settings: Settings) -> ssl.TLSVersion:
    versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    if settings.tls_min_version not in versions:
        raise TlsConfigError(f"RADFLOW_TLS_MIN_VERSION must be one of {sorted(versions)}, not {settings.tls_min_version!r}")
    return versions[settings.tls_min_version]


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path | None, password: str | None, what: str) -> None:
    try:
        ctx.load_cert_chain(cert, key, password=password)
    except (OSError, ssl.SSLError) as err:
        # The message names the files, never the password.
        raise TlsConfigError(f"{what}: cannot load certificate {cert} / key {key}: {err}") from None


def listener_enabled(settings: Settings, listener: str) -> bool:
    return bool(_get(settings, f"{listener}_tls_cert") or _get(settings, f"{listener}_tls_key"))


def server_context(settings: Settings, listener: str, *, context_class: type[ssl.SSLContext] = ssl.SSLContext
                   ) -> ssl.SSLContext | None:
    """The listener's server-side context, or None when it serves plain TCP.

    With `<listener>_tls_client_ca` set, client certificates are verified against it when
    presented; `<listener>_tls_require_client_cert` makes them mandatory (mutual TLS).
    """
    assert listener in LISTENERS, listener
    cert, key = _get(settings, f"{listener}_tls_cert"), _get(settings, f"{listener}_tls_key")
    client_ca = _get(settings, f"{listener}_tls_client_ca")
    require = _get(settings, f"{listener}_tls_require_client_cert")
    env = f"RADFLOW_{listener.upper()}_TLS"
    if not cert and not key:
        if client_ca or require:
            raise TlsConfigError(f"{env}_CLIENT_CA / _REQUIRE_CLIENT_CERT need {env}_CERT and {env}_KEY")
        return None
    if not cert or not key:
        raise TlsConfigError(f"{env}_CERT and {env}_KEY go together")
    if require and not client_ca:
        raise TlsConfigError(f"{env}_REQUIRE_CLIENT_CERT needs {env}_CLIENT_CA (the CA client certificates must chain to)")
    ctx = context_class(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _minimum(settings)
    _load_chain(ctx, cert, key, _password(settings), env)
    if client_ca:
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as err:
            raise TlsConfigError(f"{env}_CLIENT_CA: cannot load {client_ca}: {err}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    return ctx


def client_enabled(settings: Settings, client: str) -> bool:
    return any(_get(settings, f"{client}_tls{part}") for part in ("", "_ca", "_cert", "_key"))


def client_context(settings: Settings, client: str) -> ssl.SSLContext | None:
    """The client-side context towards a peer (`ehr_mllp`, `dicom_archive`), or None for plain TCP.

    The peer's certificate must chain to `<client>_tls_ca` (the system store when unset) and
    name the host radflow connects to (DNS or IP subject alternative name).
    """
    assert client in CLIENTS, client
    if not client_enabled(settings, client):
        return None
    ca, cert, key = (_get(settings, f"{client}_tls_{part}") for part in ("ca", "cert", "key"))
    env = f"RADFLOW_{client.upper()}_TLS"
    return make_client_context(ca, cert, key, password=_password(settings), minimum=_minimum(settings), what=env)


def make_client_context(ca: Path | None = None, cert: Path | None = None, key: Path | None = None, *,
                        password: str | None = None, minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                        what: str = "TLS client") -> ssl.SSLContext:
    """A verifying client context (also used by `radflow send-hl7 --tls`)."""
    if key and not cert:
        raise TlsConfigError(f"{what}: a client key needs its certificate")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as err:
        raise TlsConfigError(f"{what}: cannot load the CA {ca}: {err}") from None
    ctx.minimum_version = minimum
    if cert:
        _load_chain(ctx, cert, key, password, what)
    return ctx


def temporal_tls(settings: Settings) -> bool | TLSConfig:
    """temporalio's TLS argument: False (plaintext), or a TLSConfig (server CA, mTLS client pair)."""
    if not (settings.temporal_tls or settings.temporal_tls_cert or settings.temporal_tls_ca):
        return False
    if bool(settings.temporal_tls_cert) != bool(settings.temporal_tls_key):
        raise TlsConfigError("RADFLOW_TEMPORAL_TLS_CERT and RADFLOW_TEMPORAL_TLS_KEY go together")
    return TLSConfig(
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
    )


def peer_subject(ssl_object: object) -> str:
    """The verified client certificate's subject CN (for logs: not PHI), or "" without one."""
    getpeercert = getattr(ssl_object, "getpeercert", None)
    cert = getpeercert() if getpeercert else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
