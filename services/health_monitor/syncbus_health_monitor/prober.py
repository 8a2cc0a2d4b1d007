"""How the monitor calls a vendor: a credential from the credential service, then `ping()`.

`ping()` is each adapter's cheapest authenticated call (Xledger `query { __typename }`; Business
Central `companies?$top=1` or `$metadata`). It still counts against the vendor's quota, which is
why the monitor spends from the probe budget before it calls `Prober.ping`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client

from syncbus_adapters import AdapterContext, ProbeResult, adapter_class
from syncbus_adapters.observed import VendorRequestObserver, observe_requests
from syncbus_shared.contracts import IntegrationConfig
from syncbus_shared.credentials_client import fetch_credential
from syncbus_shared.tracing import traced_http_client

from .settings import HealthSettings


class Prober(Protocol):
    async def ping(self, config: IntegrationConfig) -> ProbeResult:
        """One cheapest vendor call. Raises AdapterError or CredentialUnavailableError."""
        ...


@dataclass
class AdapterProber:
    """Probes through the integration's adapter, with a fresh connection per probe.

    Probes are at least 15 minutes apart, so a kept-alive connection would be closed by then.
    """

    nc: Client
    settings: HealthSettings
    on_vendor_request: VendorRequestObserver | None = None

    async def ping(self, config: IntegrationConfig) -> ProbeResult:
        credential = await fetch_credential(
            self.nc,
            config.integration_id,
            purpose="probe",
            timeout=self.settings.credential_timeout_seconds,
        )
        timeout = min(self.settings.probe_timeout_seconds, config.timeout_seconds)
        client = traced_http_client(timeout=timeout)
        async with observe_requests(client, config.vendor, self.on_vendor_request) as http:
            adapter = adapter_class(config.vendor)(
                AdapterContext(
                    integration_id=config.integration_id,
                    endpoint=config.endpoint,
                    credential=credential,
                    http=http,
                    timeout_seconds=timeout,
                    options=dict(config.options),
                )
            )
            return await adapter.ping()
