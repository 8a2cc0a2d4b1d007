"""A faithful fake of Business Central's API v2.0 and Entra's token endpoint (`vendor-facts.md`).

    python -m syncbus_fakes.business_central --port 0 --client my-app:my-secret
    # stderr: {"event": "fake.business_central.ready", "url": "http://127.0.0.1:PORT", ...}

    app = create_app(BusinessCentralFakeSettings(clients=["my-app:my-secret"],
                                                 rate_limit_requests=30,
                                                 rate_limit_window_seconds=2))
    async with serve_app(app) as url:                        # syncbus_fakes.server
        token = httpx.post(f"{url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "my-app",
            "client_secret": "my-secret",
            "scope": "https://api.businesscentral.dynamics.com/.default"}).json()["access_token"]
        httpx.get(f"{url}/v2.0/{tenant}/production/api/v2.0/companies?$top=1",
                  headers={"Authorization": f"Bearer {token}"})

What it serves: Entra's client-credentials token endpoint (expiring tokens, Entra's error
shapes), and under the API root companies, journals, journalLines (field rules and length
limits), `Microsoft.NAV.post`, JSON `$batch` (at most 100 operations, relative URLs,
`Isolation: snapshot`), `generalLedgerEntries` with `$filter`, ETag/If-Match on PATCH and DELETE,
the OData error envelope, and the limits per service principal: 6,000 requests per sliding
5 minutes, 5 processed at once with 95 queued, 429 `Application_TooManyRequests` with a
`Retry-After` only on some of them. A token for another audience gets a 401 with an XML body.

Decisions where the facts are silent, each written where it is made: error codes of ours
(`errors.py`), how a failed snapshot `$batch` answers (`api.Api.batch`), a `$batch` counting
once against the window (`limits.py`), the journal `code` limit of 10 characters (Business
Central's Code[10] for a journal batch name), and Code fields stored in upper case.

Modules: `settings`, `auth` (clients and tokens), `limits`, `odata` (paths, `$filter`, ETags),
`state` (companies, journals, entries, stats), `api` (the resources), `faults`, `errors` (shapes
and exact decimals), `service` (the request pipeline), `control` (`/_fake/`), `app`, `__main__`.
"""

from .app import create_app
from .faults import Fault, FaultBoard, Stage
from .service import BusinessCentralFake
from .settings import BC_AUDIENCE, BusinessCentralFakeSettings

__all__ = [
    "BC_AUDIENCE",
    "BusinessCentralFake",
    "BusinessCentralFakeSettings",
    "Fault",
    "FaultBoard",
    "Stage",
    "create_app",
]
