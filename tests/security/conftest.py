"""Fixtures of tests/security: `locked_nats` (nats_security_support.py) for every module here."""

from nats_security_support import locked_nats

__all__ = ["locked_nats"]
