"""Reading secrets from Vault / OpenBao KV v2 (the only module in syncbus that talks to Vault)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import hvac
import requests
from hvac.exceptions import Forbidden, InvalidPath, VaultDown, VaultError

from .settings import VaultSettings


class VaultUnavailableError(Exception):
    """Vault could not be reached, is sealed, or answered with a server error."""


class SecretNotFoundError(LookupError):
    """No live secret at the path (missing, soft-deleted or destroyed)."""


class VaultDeniedError(PermissionError):
    """The service's token may not read the path (or has expired: Vault says the same)."""


@dataclass(frozen=True)
class SecretVersion:
    data: dict[str, str]
    version: int


class VaultReader:
    def __init__(self, settings: VaultSettings) -> None:
        self._settings = settings
        token = settings.token.get_secret_value() if settings.token else None
        self._client = hvac.Client(url=settings.url, token=token, timeout=settings.timeout_seconds)

    def _read(self, path: str) -> SecretVersion:
        try:
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self._settings.mount, raise_on_deleted_version=True
            )
        except InvalidPath as exc:
            raise SecretNotFoundError(f"no secret at {self._settings.mount}/{path}") from exc
        except Forbidden as exc:
            raise VaultDeniedError(
                f"permission denied reading {self._settings.mount}/{path}"
            ) from exc
        except VaultDown as exc:
            raise VaultUnavailableError("Vault is sealed") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise VaultUnavailableError(f"Vault at {self._settings.url} is unreachable") from exc
        except VaultError as exc:
            raise VaultUnavailableError(f"Vault answered {type(exc).__name__}") from exc
        payload = response.get("data") or {}
        data = payload.get("data")
        if not data:
            raise SecretNotFoundError(f"no live secret at {self._settings.mount}/{path}")
        version = int((payload.get("metadata") or {}).get("version") or 0)
        return SecretVersion(data={str(k): str(v) for k, v in data.items()}, version=version)

    async def read(self, path: str) -> SecretVersion:
        return await asyncio.to_thread(self._read, path)

    def _ready(self) -> bool:
        try:
            return bool(self._client.sys.is_initialized()) and not self._client.sys.is_sealed()
        except Exception:
            return False

    async def ready(self) -> bool:
        return await asyncio.to_thread(self._ready)
