"""Reading secrets from Vault / OpenBao KV v2 (the only module in syncbus that reads them).

    reader = VaultReader(session)
    secret = await reader.read("integrations/toyen-xledger")          # data + version
    version = await reader.current_version("integrations/toyen-xledger")  # metadata only

`current_version` reads the secret's metadata (`current_version`, and whether that version is
deleted or destroyed) without the data: the cache uses it to notice a rotation cheaply.

A soft-deleted latest version reads as no data and a destroyed or pruned one raises
`InvalidPath`: both are `SecretNotFoundError`, and so is metadata naming a deleted current
version. Errors are those of `errors.py`; calls go through the `VaultSession` (token upkeep,
403 → self-lookup → login again once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hvac.exceptions import InvalidPath

from .errors import (
    SecretNotFoundError,
    VaultDeniedError,
    VaultError,
    VaultLoginError,
    VaultSealedError,
    VaultTlsError,
    VaultUnavailableError,
    VaultUnreachableError,
)
from .health import VaultState
from .session import VaultSession
from .settings import VaultSettings

__all__ = [
    "SecretNotFoundError",
    "SecretVersion",
    "VaultDeniedError",
    "VaultError",
    "VaultLoginError",
    "VaultReader",
    "VaultSealedError",
    "VaultTlsError",
    "VaultUnavailableError",
    "VaultUnreachableError",
]


@dataclass(frozen=True)
class SecretVersion:
    data: dict[str, str]
    version: int


class VaultReader:
    def __init__(self, session: VaultSession) -> None:
        self.session = session
        self._mount = session.settings.mount

    @classmethod
    def from_settings(cls, settings: VaultSettings, state: VaultState) -> VaultReader:
        return cls(VaultSession(settings, state))

    async def read(self, path: str, *, version: int | None = None) -> SecretVersion:
        """The latest (or the given) version of the secret at `path`."""
        where = f"{self._mount}/{path}"

        def read(client: Any) -> Any:
            return client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=self._mount, raise_on_deleted_version=True
            )

        try:
            response = await self.session.call(read, what=f"reading {where}")
        except InvalidPath:
            raise SecretNotFoundError(f"no secret at {where}") from None
        payload = (response or {}).get("data") or {}
        data = payload.get("data")
        if not data:
            raise SecretNotFoundError(f"no live secret at {where} (its version is deleted)")
        found = int((payload.get("metadata") or {}).get("version") or 0)
        return SecretVersion(data={str(k): str(v) for k, v in data.items()}, version=found)

    async def current_version(self, path: str) -> int:
        """The secret's current version number, from its metadata (no secret data is read)."""
        where = f"{self._mount}/{path}"

        def read(client: Any) -> Any:
            return client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=self._mount)

        try:
            response = await self.session.call(read, what=f"reading the metadata of {where}")
        except InvalidPath:
            raise SecretNotFoundError(f"no secret at {where}") from None
        meta = (response or {}).get("data") or {}
        current = int(meta.get("current_version") or 0)
        entry = (meta.get("versions") or {}).get(str(current)) or {}
        if current == 0 or entry.get("destroyed") or _deleted(entry.get("deletion_time")):
            raise SecretNotFoundError(f"no live secret at {where} (its version is deleted)")
        return current


def _deleted(deletion_time: Any) -> bool:
    """KV v2 marks a deleted version with its deletion time ('' while it lives; it may lie in
    the future when the metadata sets `delete_version_after`)."""
    if not isinstance(deletion_time, str) or not deletion_time:
        return False
    try:
        when = datetime.fromisoformat(deletion_time)  # 3.11 reads "Z" and nanoseconds
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= datetime.now(UTC)
