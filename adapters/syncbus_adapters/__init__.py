"""Vendor adapters: one module per target system, found through entry points."""

from .base import (
    AdapterContext,
    AdapterError,
    BatchReceipt,
    Credential,
    ProbeResult,
    VendorAdapter,
)
from .registry import UnknownVendorError, adapter_class, available_adapters

__all__ = [
    "AdapterContext",
    "AdapterError",
    "BatchReceipt",
    "Credential",
    "ProbeResult",
    "UnknownVendorError",
    "VendorAdapter",
    "adapter_class",
    "available_adapters",
]
