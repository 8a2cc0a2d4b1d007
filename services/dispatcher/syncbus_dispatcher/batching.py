"""Packing vouchers into vendor calls: as full as the vendor allows, never splitting a voucher."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from syncbus_shared.contracts import Voucher


class VoucherTooLargeError(ValueError):
    def __init__(self, voucher: Voucher, lines: int, max_lines: int) -> None:
        super().__init__(
            f"voucher {voucher.voucher_id} makes {lines} vendor lines; "
            f"the vendor takes at most {max_lines} in one call"
        )


def pack_batches(
    vouchers: Sequence[Voucher],
    max_lines: int,
    lines_of: Callable[[Voucher], int] = lambda v: len(v.lines),
) -> list[tuple[Voucher, ...]]:
    batches: list[tuple[Voucher, ...]] = []
    current: list[Voucher] = []
    lines = 0
    for voucher in vouchers:
        n = lines_of(voucher)
        if n > max_lines:
            raise VoucherTooLargeError(voucher, n, max_lines)
        if current and lines + n > max_lines:
            batches.append(tuple(current))
            current, lines = [], 0
        current.append(voucher)
        lines += n
    if current:
        batches.append(tuple(current))
    return batches
