"""Finding adapters: entry points in the group `syncbus.adapters`, name -> adapter class.

A third-party package adds an adapter by declaring, in its own pyproject.toml:

    [project.entry-points."syncbus.adapters"]
    myvendor = "my_package.adapter:MyVendorAdapter"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .base import VendorAdapter

GROUP = "syncbus.adapters"


class UnknownVendorError(LookupError):
    def __init__(self, vendor: str, known: list[str]) -> None:
        super().__init__(
            f"no adapter named {vendor!r} is installed (known: {', '.join(known) or 'none'})"
        )
        self.vendor = vendor


@cache
def available_adapters() -> dict[str, type[VendorAdapter]]:
    found: dict[str, type[VendorAdapter]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, VendorAdapter)):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a VendorAdapter")
        found[ep.name] = cls
    return found


def adapter_class(vendor: str) -> type[VendorAdapter]:
    adapters = available_adapters()
    try:
        return adapters[vendor]
    except KeyError:
        raise UnknownVendorError(vendor, sorted(adapters)) from None
