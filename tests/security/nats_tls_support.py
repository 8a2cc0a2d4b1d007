"""A throwaway certificate authority made in the test, and a nats-server that requires TLS.

Imported by name (tests/ has no packages).

    ca = ThrowawayCa.make(tmp_path / "ca", "syncbus test CA")
    server_cert = ca.issue("nats-server", ips=["127.0.0.1"], dns=["localhost"])
    client_cert = ca.issue("dispatcher", client=True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from syncbus_devstack.nats_users import ACCOUNTS_CONF
from throwaway_ca import ThrowawayCA


@dataclass(frozen=True)
class Issued:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class ThrowawayCa:
    """`throwaway_ca.ThrowawayCA` with its certificates written to files (nats-server wants paths)."""

    folder: Path
    ca: ThrowawayCA

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @classmethod
    def make(cls, folder: Path, name: str) -> ThrowawayCa:
        folder.mkdir(parents=True, exist_ok=True)
        made = cls(folder, ThrowawayCA(name))
        made.cert_file.write_bytes(made.ca.cert_pem)
        return made

    def issue(
        self,
        name: str,
        *,
        ips: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        client: bool = False,
    ) -> Issued:
        pem = self.ca.issue(name, ips=ips, dns=dns, client=client)
        issued = Issued(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        issued.cert_file.write_bytes(pem.cert_pem)
        issued.key_file.write_bytes(pem.key_pem)
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
