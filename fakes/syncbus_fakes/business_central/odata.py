"""The bits of OData v4 the fake reads: resource paths, `$filter`, `$top`/`$skip`, ETags.

`$filter` understands what integrators send to Business Central's API:

    documentNumber eq 'SB1F3A'                      a string literal ('' escapes a quote)
    documentNumber eq 'A' or documentNumber eq 'B'  `and` binds tighter than `or`
    postingDate ge 2017-01-01 and amount gt 100.5   dates, numbers, true/false, null, GUIDs
    (code eq 'X')                                   parentheses

with `eq ne gt ge lt le`. Anything else is a `BadRequest_InvalidFilter` error.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from .errors import INVALID_FILTER, RESOURCE_NOT_FOUND, ODataError

_SEGMENT = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9_.]*|\$batch|\$metadata)(?:\((?P<key>[^()]*)\))?$"
)


@dataclass(frozen=True)
class Segment:
    name: str
    key: str | None


def parse_path(path: str) -> list[Segment]:
    """`companies(ID)/journals(ID)/journalLines` -> segments; keys may be quoted or bare."""
    segments = []
    for raw in path.strip("/").split("/"):
        match = _SEGMENT.match(unquote(raw))
        if match is None:
            raise ODataError(
                404, RESOURCE_NOT_FOUND, f"The request URL segment '{raw}' is not valid."
            )
        key = match.group("key")
        if key is not None:
            key = key.strip()
            if len(key) >= 2 and key[0] == key[-1] == "'":
                key = key[1:-1]
        segments.append(Segment(match.group("name"), key))
    return segments


# ---- ETags ----------------------------------------------------------------------------------


def etag(entity_id: str, version: int) -> str:
    """A weak ETag in Business Central's style: W/"<base64 of a version stamp>"."""
    stamp = base64.b64encode(f"'{version};{entity_id}'".encode()).decode("ascii")
    return f'W/"{stamp}"'


def etag_matches(if_match: str, current: str) -> bool:
    candidates = [part.strip() for part in if_match.split(",")]
    return any(candidate in {"*", current} for candidate in candidates)


# ---- $filter --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<lparen>\()|(?P<rparen>\))"
    r"|(?P<date>\d{4}-\d{2}-\d{2}(?![\d:T]))"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_/]*))"
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}

Predicate = Callable[[dict[str, Any]], bool]


def _bad(text: str, why: str) -> ODataError:
    return ODataError(400, INVALID_FILTER, f"Invalid filter expression '{text}': {why}.")


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(text, f"unexpected text at position {position}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str, fields: frozenset[str], entity: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.fields = fields
        self.entity = entity

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _bad(self.text, "it ends too early")
        self.at += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise _bad(self.text, f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == ("word", "or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.comparison()]
        while self.peek() == ("word", "and"):
            self.take()
            parts.append(self.comparison())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def comparison(self) -> Predicate:
        kind, value = self.take()
        if kind == "lparen":
            inner = self.disjunction()
            if self.take()[0] != "rparen":
                raise _bad(self.text, "a parenthesis is not closed")
            return inner
        if kind != "word":
            raise _bad(self.text, f"expected a property name, found {value!r}")
        if value not in self.fields:
            raise ODataError(
                400,
                INVALID_FILTER,
                f"Could not find a property named '{value}' on type 'Microsoft.NAV.{self.entity}'.",
            )
        name = value
        kind, operator = self.take()
        if kind != "word" or operator not in _COMPARISONS:
            raise _bad(self.text, f"expected eq, ne, gt, ge, lt or le after {name}")
        literal = self.literal()
        compare = _COMPARISONS[operator]
        return lambda row: compare(_comparable(row.get(name), literal), literal)

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind in {"date", "guid"}:
            return value.lower() if kind == "guid" else value
        if kind == "number":
            try:
                return Decimal(value)
            except InvalidOperation:  # pragma: no cover - the pattern already guards this
                raise _bad(self.text, f"{value!r} is not a number") from None
        if kind == "word" and value in {"true", "false"}:
            return value == "true"
        if kind == "word" and value == "null":
            return None
        raise _bad(self.text, f"expected a literal, found {value!r}")


def _comparable(value: Any, literal: Any) -> Any:
    """A property's value in the literal's terms (numbers as Decimal, GUIDs in lower case)."""
    if (
        isinstance(literal, Decimal)
        and isinstance(value, int | Decimal)
        and not isinstance(value, bool)
    ):
        return Decimal(value)
    if (
        isinstance(literal, str)
        and isinstance(value, str)
        and re.fullmatch(r"[0-9a-fA-F-]{36}", literal)
    ):
        return value.lower()
    return value


def parse_filter(text: str, fields: frozenset[str], entity: str) -> Predicate:
    return _Parser(text, fields, entity).parse()


# ---- query options --------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    filter: str | None
    top: int | None
    skip: int


def read_query(params: dict[str, str]) -> Query:
    def number(name: str) -> int | None:
        raw = params.get(name)
        if raw is None:
            return None
        if not raw.isdigit():
            raise ODataError(400, INVALID_FILTER, f"The value '{raw}' of {name} is not valid.")
        return int(raw)

    return Query(filter=params.get("$filter"), top=number("$top"), skip=number("$skip") or 0)


def max_page_size(prefer: str | None) -> int | None:
    """`Prefer: odata.maxpagesize=N` -> N."""
    if not prefer:
        return None
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            return max(int(value.strip()), 1)
    return None
