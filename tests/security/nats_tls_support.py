"""A throwaway certificate authority made in the test, and a nats-server that requires TLS.

Imported by name (tests/ has no packages).

    ca = ThrowawayCa.make(tmp_path / "ca", "syncbus test CA")
    server_cert = ca.issue("nats-server", ips=["127.0.0.1"], dns=["localhost"])
    client_cert = ca.issue("dispatcher", client=True)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from syncbus_devstack.nats_users import ACCOUNTS_CONF


@dataclass(frozen=True)
class Issued:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class ThrowawayCa:
    folder: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @classmethod
    def make(cls, folder: Path, name: str) -> ThrowawayCa:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        ca = cls(folder, key, cert)
        ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def issue(
        self,
        name: str,
        *,
        ips: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        client: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        issued.key_file.chmod(0o600)
        return issued


def tls_server_config(
    folder: Path,
    server: Issued,
    *,
    client_ca: Path | None = None,
    handshake_first: bool = False,
    with_users: bool = True,
) -> Path:
    """A nats-server configuration requiring TLS with `server`'s certificate, including the
    deploy configuration's users (by a path relative to this file, as `include` wants);
    `client_ca` also requires a client certificate signed by it (mutual TLS), `handshake_first`
    TLS before the server says anything."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "tls {",
        f'  cert_file: "{server.cert_file}"',
        f'  key_file: "{server.key_file}"',
        "  timeout: 2",
    ]
    if client_ca is not None:
        lines += [f'  ca_file: "{client_ca}"', "  verify: true"]
    if handshake_first:
        lines.append("  handshake_first: true")
    lines.append("}")
    if with_users:
        lines.append(f'include "{os.path.relpath(ACCOUNTS_CONF, folder)}"')
    path = folder / "nats-tls.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
