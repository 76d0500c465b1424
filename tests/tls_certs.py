"""Certificates generated at test time (cryptography): one CA, a server and a client certificate,
plus a second, untrusted CA with its own client certificate. PEM files in a directory.

The server certificate names localhost and 127.0.0.1 (subject alternative names), so clients
that verify the host name accept it on loopback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA both sides trust
    server_cert: Path
    server_key: Path
    client_cert: Path  # issued by `ca`
    client_key: Path
    rogue_ca: Path  # a CA nobody trusts
    rogue_client_cert: Path  # issued by `rogue_ca`
    rogue_client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "radflow tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, password: bytes | None = None) -> None:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(cn: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(directory: Path, *, server_key_password: bytes | None = None) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("radflow test CA")
    rogue, rogue_key = _ca("rogue CA")
    server, server_key = _leaf("radflow-server", ca, ca_key, server=True)
    client, client_key = _leaf("modality-ct1", ca, ca_key, server=False)
    rogue_client, rogue_client_key = _leaf("intruder", rogue, rogue_key, server=False)
    pki = Pki(*(directory / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "rogue-ca.pem",
                                         "rogue-client.pem", "rogue-client.key")))
    _write_cert(ca, pki.ca)
    _write_cert(rogue, pki.rogue_ca)
    _write_cert(server, pki.server_cert)
    _write_key(server_key, pki.server_key, server_key_password)
    _write_cert(client, pki.client_cert)
    _write_key(client_key, pki.client_key)
    _write_cert(rogue_client, pki.rogue_client_cert)
    _write_key(rogue_client_key, pki.rogue_client_key)
    return pki
