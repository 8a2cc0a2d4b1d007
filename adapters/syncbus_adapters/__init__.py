"""Vendor adapters: one module per target system, found through entry points."""

from .base import (
    AdapterContext,
    AdapterError,
    BatchReceipt,
    Credential,
    ProbeResult,
    VendorAdapter,
)
from .pacing import Pacer, RateRules, credential_identity, pacer_for
from .registry import UnknownVendorError, adapter_class, available_adapters

__all__ = [
    "AdapterContext",
    "AdapterError",
    "BatchReceipt",
    "Credential",
    "Pacer",
    "ProbeResult",
    "RateRules",
    "UnknownVendorError",
    "VendorAdapter",
    "adapter_class",
    "available_adapters",
    "credential_identity",
    "pacer_for",
]
