"""Packing vouchers into vendor calls: as full as the vendor allows, never splitting a voucher."""

from __future__ import annotations

from collections.abc import Sequence

from syncbus_shared.contracts import Voucher


class VoucherTooLargeError(ValueError):
    def __init__(self, voucher: Voucher, max_lines: int) -> None:
        super().__init__(
            f"voucher {voucher.voucher_id} has {len(voucher.lines)} lines; "
            f"the vendor takes at most {max_lines} in one call"
        )


def pack_batches(vouchers: Sequence[Voucher], max_lines: int) -> list[tuple[Voucher, ...]]:
    batches: list[tuple[Voucher, ...]] = []
    current: list[Voucher] = []
    lines = 0
    for voucher in vouchers:
        n = len(voucher.lines)
        if n > max_lines:
            raise VoucherTooLargeError(voucher, max_lines)
        if current and lines + n > max_lines:
            batches.append(tuple(current))
            current, lines = [], 0
        current.append(voucher)
        lines += n
    if current:
        batches.append(tuple(current))
    return batches
