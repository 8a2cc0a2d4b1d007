"""The slice of Xledger's GraphQL schema the fake serves, as SDL, with its resolvers.

graphql-core parses and validates every request against this schema, so an unknown field, a
missing argument or a malformed variable gets a genuine GraphQL error.

    query    { __typename }                                  the cheapest probe
    mutation addGLImportItems(inputs: [AddGLImportItemsInput!]!)
             -> { edges { clientId node { dbId ... } } }      at most 500 inputs, all or nothing
    query    glImportItems(first: Int, after: String, filter: GLImportItemFilter)
             -> { edges { cursor node { ... } } pageInfo { hasNextPage endCursor } }
             read-back of posted items, oldest first; `first` defaults to and may not exceed
             10,000; filter by `extIdentifier`, `extIdentifier_in` or `dbId_in`

`amount` and `exchangeRate` are `Decimal`: a decimal string such as "-12500.00" (a JSON number,
"1e3" or "12,50" is refused). Dates are `Date` strings `YYYY-MM-DD`. References (`account`,
`currency`, `taxRule`, `glObject1..5`, `subledger`, `project`, `transactionSource`) are
`{code}` (or `{dbId}`); when a chart of accounts is configured, an unknown account code fails
the whole call and nothing is posted.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from graphql import (
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    StringValueNode,
    ValueNode,
    build_schema,
)
from graphql.pyutils import inspect

from .errors import XledgerError
from .state import Ledger, Posting

SDL = """
\"\"\"A decimal number written as a string, such as "101.00" or "-12500.00".\"\"\"
scalar Decimal

\"\"\"A calendar date written YYYY-MM-DD.\"\"\"
scalar Date

\"\"\"A CET/CEST local date and time without an offset, as Xledger writes them.\"\"\"
scalar DateTimeString

type Query {
  glImportItems(first: Int, after: String, filter: GLImportItemFilter): GLImportItemConnection!
}

type Mutation {
  addGLImportItems(inputs: [AddGLImportItemsInput!]!): AddGLImportItemsConnection!
}

input ObjectRefInput {
  dbId: Int
  code: String
}

input AddGLImportItemsInput {
  clientId: String!
  node: AddGLImportItemsInputNode!
}

input AddGLImportItemsInputNode {
  trRegNumber: Int
  postedDate: Date
  invoiceDate: Date
  dueDate: Date
  account: ObjectRefInput
  transactionSource: ObjectRefInput
  amount: Decimal
  currency: ObjectRefInput
  exchangeRate: Decimal
  taxRule: ObjectRefInput
  glObject1: ObjectRefInput
  glObject2: ObjectRefInput
  glObject3: ObjectRefInput
  glObject4: ObjectRefInput
  glObject5: ObjectRefInput
  subledger: ObjectRefInput
  text: String
  invoiceNumber: String
  extIdentifier: String
  project: ObjectRefInput
}

input GLImportItemFilter {
  extIdentifier: String
  extIdentifier_in: [String!]
  dbId_in: [Int!]
}

type Account { dbId: Int code: String }
type TransactionSource { dbId: Int code: String }
type Currency { dbId: Int code: String }
type TaxRule { dbId: Int code: String }
type ObjectValue { dbId: Int code: String }
type SubLedger { dbId: Int code: String }
type Project { dbId: Int code: String }

type GLImportItem {
  dbId: Int!
  trRegNumber: Int
  postedDate: Date
  invoiceDate: Date
  dueDate: Date
  account: Account
  transactionSource: TransactionSource
  amount: Decimal
  currency: Currency
  exchangeRate: Decimal
  taxRule: TaxRule
  glObject1: ObjectValue
  glObject2: ObjectValue
  glObject3: ObjectValue
  glObject4: ObjectValue
  glObject5: ObjectValue
  subledger: SubLedger
  text: String
  invoiceNumber: String
  extIdentifier: String
  project: Project
  createdAt: DateTimeString
}

type AddGLImportItemsEdge {
  clientId: String
  node: GLImportItem!
}

type AddGLImportItemsConnection {
  edges: [AddGLImportItemsEdge!]!
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type GLImportItemEdge {
  cursor: String!
  node: GLImportItem!
}

type GLImportItemConnection {
  edges: [GLImportItemEdge!]!
  pageInfo: PageInfo!
}
"""

_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _decimal_value(value: Any) -> str:
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise TypeError(
            f"Decimal cannot represent {inspect(value)}:"
            ' expected a decimal string such as "101.00".'
        )
    return value


def _date_value(value: Any) -> str:
    if isinstance(value, str) and _DATE.match(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise TypeError(f"Date cannot represent {inspect(value)}: expected YYYY-MM-DD.")


def _string_value(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"DateTimeString cannot represent {inspect(value)}.")
    return value


def _literal(parse: Any) -> Any:
    def parse_literal(node: ValueNode, _variables: Any = None) -> Any:
        if isinstance(node, StringValueNode):
            return parse(node.value)
        raise TypeError(f"expected a string literal, got {node.kind}")

    return parse_literal


def _install_scalar(schema: GraphQLSchema, name: str, parse: Any) -> None:
    """Give a scalar built from SDL its coercion (graphql-core 3.2 and 3.3 names alike)."""
    scalar = schema.type_map[name]
    assert isinstance(scalar, GraphQLScalarType)
    for attribute in ("serialize", "parse_value", "coerce_output_value", "coerce_input_value"):
        if hasattr(scalar, attribute):
            setattr(scalar, attribute, parse)
    literal = _literal(parse)
    for attribute in ("parse_literal", "coerce_input_literal"):
        if hasattr(scalar, attribute):
            setattr(scalar, attribute, literal)


@dataclass
class ExecutionEnv:
    """The context of one GraphQL execution."""

    ledger: Ledger
    accounts: frozenset[str] | None
    max_nodes_per_call: int
    max_page_size: int
    committed: list[Posting] = field(default_factory=list)


_CURSOR_PREFIX = "glImportItem:"


def encode_cursor(db_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{db_id}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> int:
    invalid = XledgerError(f"Invalid cursor {cursor[:60]!r}.")
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if number == text or not number.isdigit():
        raise invalid
    return int(number)


def _resolve_add(
    _root: Any, info: GraphQLResolveInfo[ExecutionEnv], inputs: list[dict[str, Any]]
) -> Any:
    env: ExecutionEnv = info.context
    if len(inputs) > env.max_nodes_per_call:
        raise XledgerError(
            f"addGLImportItems takes at most {env.max_nodes_per_call} inputs per call; "
            f"got {len(inputs)}. Split the nodes into several calls."
        )
    problems = []
    for index, item in enumerate(inputs):
        account = item["node"].get("account")
        code = account.get("code") if isinstance(account, dict) else None
        if env.accounts is not None and code is not None and code not in env.accounts:
            problems.append(
                f"inputs[{index}].node.account: no account with code {code!r} in the chart"
                " of accounts."
            )
    if problems:
        shown = " ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise XledgerError(f"Validation failed, nothing was posted: {shown}{more}")
    posted = env.ledger.commit([(item.get("clientId"), item["node"]) for item in inputs])
    env.committed.extend(posted)
    return {"edges": [{"clientId": p.client_id, "node": p.as_item()} for p in posted]}


def _matches(posting: Posting, flt: dict[str, Any] | None) -> bool:
    if not flt:
        return True
    ext = posting.ext_identifier
    if flt.get("extIdentifier") is not None and ext != flt["extIdentifier"]:
        return False
    if flt.get("extIdentifier_in") is not None and ext not in set(flt["extIdentifier_in"]):
        return False
    return not (flt.get("dbId_in") is not None and posting.db_id not in set(flt["dbId_in"]))


def _resolve_items(
    _root: Any,
    info: GraphQLResolveInfo[ExecutionEnv],
    first: int | None = None,
    after: str | None = None,
    filter: dict[str, Any] | None = None,  # noqa: A002 - the argument's name in the schema
) -> Any:
    env: ExecutionEnv = info.context
    size = env.max_page_size if first is None else first
    if size < 0 or size > env.max_page_size:
        raise XledgerError(f"`first` must be between 0 and {env.max_page_size}; got {size}.")
    after_id = decode_cursor(after) if after is not None else None
    found = [
        p
        for p in env.ledger.postings
        if (after_id is None or p.db_id > after_id) and _matches(p, filter)
    ]
    page = found[:size]
    edges = [{"cursor": encode_cursor(p.db_id), "node": p.as_item()} for p in page]
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": len(found) > size,
            "hasPreviousPage": after_id is not None,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def build_xledger_schema() -> GraphQLSchema:
    schema = build_schema(SDL)
    _install_scalar(schema, "Decimal", _decimal_value)
    _install_scalar(schema, "Date", _date_value)
    _install_scalar(schema, "DateTimeString", _string_value)
    mutation = schema.mutation_type
    query = schema.query_type
    assert mutation is not None
    assert query is not None
    mutation.fields["addGLImportItems"].resolve = _resolve_add
    query.fields["glImportItems"].resolve = _resolve_items
    return schema
