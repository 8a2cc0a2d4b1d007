"""Faithful fakes of the vendors' APIs: real HTTP servers of ours, for tests and the demo.

    syncbus_fakes.server     serve_app(app) (tests), serve_until_signalled(app) (processes),
                             ConnectionControlApp / DropConnection (transport-level faults)
    syncbus_fakes.xledger    Xledger's GraphQL API; `python -m syncbus_fakes.xledger`

Each fake enforces its vendor's auth and limits with the vendor's error shapes, records every
posting so a test can count duplicates, and injects faults on demand through `/_fake/faults`.
A fake started as a process prints one JSON line `{"event": "fake.<vendor>.ready", "url": ...}`
on stderr once it accepts connections.
"""
