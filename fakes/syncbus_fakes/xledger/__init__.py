"""A faithful fake of Xledger's GraphQL API (see `vendor-facts.md`), for tests and the demo.

    python -m syncbus_fakes.xledger --port 0 --token T
    # stderr: {"event": "fake.xledger.ready", "url": "http://127.0.0.1:PORT"}

    app = create_app(XledgerFakeSettings(tokens=["T"], burst_requests=3, burst_window_seconds=1))
    async with serve_app(app) as url:                        # syncbus_fakes.server
        httpx.post(f"{url}/graphql", json={"query": "{ __typename }"},
                   headers={"Authorization": "token T"})

What it serves (`schema.py`): `query { __typename }`; the mass mutation
`addGLImportItems(inputs: [AddGLImportItemsInput!]!)` (at most 500 inputs, all or nothing,
edges echo `clientId` with `node { dbId }`); and the read-back query
`glImportItems(first: Int, after: String, filter: {extIdentifier_in: [String!]})` with cursor
pagination (`edges { cursor node }`, `pageInfo { hasNextPage endCursor }`, 10,000 per page).

Decisions where Xledger's documentation is silent (each one written where it is made):

- HTTP status: every GraphQL-level answer is HTTP 200 with an `errors` array, auth failures
  included (the facts: Xledger answers errors with 200; integrators see the bad-format message in
  a 200 body). A body that is not a GraphQL request at all (not JSON, no `query`) gets HTTP 400
  (Xledger's validation errors have been seen with 400 too). Injected gateway faults use 5xx.
- Auth: a missing header, another scheme (`Bearer`) or a malformed token (empty, with spaces or
  control characters) -> "Bad format for API Token. Expected header: "Authorization: token
  <your-token>"". A well-formed token the fake does not know -> "Authentication failed: the API
  token is not valid ...". Neither carries a code (none is documented). The scheme word is
  matched case-insensitively, like any HTTP auth scheme.
- Limits (`limits.py`): burst and concurrency per token; one credit quota for the whole fake
  (one subscription); rate-limited answers cost no credit, every other authenticated request
  costs one. `resetAt` is CET/CEST local time without an offset, like Xledger's timestamps.
- Postings: a call that fails validation posts nothing. Nodes are recorded exactly as received
  (after GraphQL coercion, which leaves strings untouched), so text round-trips byte for byte.

Modules: `settings` (start-up settings), `auth` (tokens), `limits`, `faults` (fault registry),
`errors` (Xledger's error shapes), `schema` (SDL and resolvers), `state` (postings, stats),
`service` (the request pipeline), `control` (the `/_fake/` API), `app` (routes), `__main__`.
"""

from .app import create_app
from .faults import Fault, FaultBoard, Stage
from .service import XledgerFake
from .settings import XledgerFakeSettings

__all__ = ["Fault", "FaultBoard", "Stage", "XledgerFake", "XledgerFakeSettings", "create_app"]
