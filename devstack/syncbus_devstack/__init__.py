"""The embedded stack: real nats-server and OpenBao from PyPI, fakes and services as processes."""
