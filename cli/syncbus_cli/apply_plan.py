"""What `syncbus apply -f integrations.yaml` reads and would change: no NATS here, only data.

The file declares integrations (a list under `integrations:`, or a bare list), each in the shape
of the `integrations` bucket's entries without the `type` field:

    integrations:
      - integration_id: toyen-xledger
        vendor: xledger
        endpoint: https://demo.xledger.net/graphql
        credentials_path: integrations/toyen-xledger
        schedule: {cron: "5 2 1 * *", timezone: Europe/Oslo, period: month}

`read_file` checks everything before anything is written: YAML syntax (duplicate keys refused),
the contract (unknown fields refused), the schedule (`validate_schedule`: a cron that never
fires), that an adapter exists for the vendor, and that no option looks like a secret (secrets
live in Vault at `credentials_path`). `plan` compares the file with what is stored.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from syncbus_shared.contracts import IntegrationConfig

MAX_FILE_BYTES = 5 * 1024 * 1024

_SECRET_LIKE = re.compile(
    r"(secret|passw(or)?d|\bpwd\b|pwd$|^pwd|token|api[_-]?key|private[_-]?key|credential|"
    r"^auth|authori[sz]ation|bearer|connection[_-]?string|^sas$|sas[_-]?token|^dsn$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^(bearer|basic)\s+\S+|^eyJ[\w-]{10,}\.", re.IGNORECASE)
"""A value that is a credential whatever its option is called (an HTTP auth header, a JWT)."""


class FileError(Exception):
    """The file cannot be read as YAML at all (exit 2)."""


class InvalidFileError(Exception):
    """The file reads, but declares something that cannot be applied (exit 1)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems")
        self.problems = problems


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    KEEP = "keep"
    """Stored but not in the file, and not pruned: left as it is."""


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass
class Change:
    integration_id: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    config: IntegrationConfig | None = None
    revision: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "action": self.action.value,
            "fields": [{"path": f.path, "from": f.before, "to": f.after} for f in self.fields],
        }


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""


def _mapping_without_duplicates(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def _load_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = ""
        context = str(getattr(exc, "context", "") or "")
        if "alias" in context or "anchor" in context:
            hint = ' (quote cron expressions that start with *, e.g. cron: "*/15 * * * *")'
        raise FileError(f"{name} is not valid YAML{where}: {problem}{hint}") from None


def read_file(path: Path, *, known_vendors: Iterable[str]) -> list[IntegrationConfig]:
    """Every integration the file declares, checked; `FileError` or `InvalidFileError` if not."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise FileError(f"{path} is {len(raw)} bytes; at most {MAX_FILE_BYTES} are read")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileError(f"{path} is not UTF-8 text") from None
    return parse_document(_load_yaml(text, path.name), known_vendors=known_vendors)


def parse_document(document: Any, *, known_vendors: Iterable[str]) -> list[IntegrationConfig]:
    from syncbus_scheduler.validation import ScheduleError, validate_schedule  # noqa: PLC0415

    if isinstance(document, Mapping):
        extra = sorted(str(k) for k in document if k != "integrations")
        if extra:
            message = (
                f"unknown top-level key(s) {', '.join(extra)}; the file has one key, "
                "`integrations`, holding a list"
            )
            raise InvalidFileError([message])
        document = document.get("integrations")
    if document is None:
        document = []
    if not isinstance(document, list):
        raise InvalidFileError(["`integrations` must be a list of integrations"])
    vendors = sorted(known_vendors)
    problems: list[str] = []
    configs: list[IntegrationConfig] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(document, start=1):
        label = f"integration #{number}"
        if not isinstance(item, Mapping):
            problems.append(f"{label} must be a mapping of fields, not {type(item).__name__}")
            continue
        name = item.get("integration_id")
        if isinstance(name, str):
            label += f" ({name})"
        if "type" in item:
            problems.append(f"{label}: leave out `type`; the file holds integrations only")
            continue
        unknown = _unknown_fields(IntegrationConfig, item)
        if unknown:
            problems.extend(
                f"{label}: {path}: unknown field (check its spelling)" for path in unknown
            )
            continue
        try:
            config = IntegrationConfig.model_validate(dict(item))
        except ValidationError as exc:
            problems.extend(
                f"{label}: {_describe(error)}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            continue
        if config.integration_id in seen:
            problems.append(
                f"{label}: integration {config.integration_id!r} is declared twice "
                f"(also #{seen[config.integration_id]})"
            )
            continue
        seen[config.integration_id] = number
        if config.vendor not in vendors:
            problems.append(
                f"{label}: no adapter is installed for vendor {config.vendor!r} "
                f"(installed: {', '.join(vendors) or 'none'})"
            )
        problems.extend(
            f"{label}: option {option!r} looks like a secret; secrets belong in Vault "
            f"at credentials_path ({config.credentials_path}), never in this file"
            for option, value in config.options.items()
            if _SECRET_LIKE.search(option) or _SECRET_VALUE.search(value.strip())
        )
        if _has_userinfo(config.endpoint):
            problems.append(
                f"{label}: endpoint carries a user name or password; credentials belong in "
                f"Vault at credentials_path ({config.credentials_path}), never in this file"
            )
        try:
            if config.schedule is not None:
                validate_schedule(config.schedule)
        except ScheduleError as exc:
            problems.append(f"{label}: {exc}")
        configs.append(config)
    if problems:
        raise InvalidFileError(problems)
    return configs


def _has_userinfo(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def _unknown_fields(model: type[BaseModel], data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keys the model does not have, at any depth (the wire contracts ignore them; a file must
    not: a misspelt `timezone` would silently mean UTC)."""
    unknown: list[str] = []
    for key, value in data.items():
        info = model.model_fields.get(str(key))
        if info is None or key == "type":
            unknown.append(f"{prefix}{key}")
            continue
        nested = _model_of(info.annotation)
        if nested is not None and isinstance(value, Mapping):
            unknown += _unknown_fields(nested, value, f"{prefix}{key}.")
    return unknown


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class in `Model` or `Model | None`, if any."""
    candidates = [annotation, *get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "body"
    message = str(error["msg"])
    if error.get("type") == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return f"{where}: {message}"


def plan(
    wanted: list[IntegrationConfig],
    stored: Mapping[str, tuple[bytes, int]],
    *,
    prune: bool,
) -> list[Change]:
    """One change per integration in the file or the bucket, in id order."""
    changes: list[Change] = []
    by_id = {c.integration_id: c for c in wanted}
    for integration_id in sorted(set(by_id) | set(stored)):
        config = by_id.get(integration_id)
        held = stored.get(integration_id)
        if config is None:
            assert held is not None
            action = Action.DELETE if prune else Action.KEEP
            changes.append(Change(integration_id, action, revision=held[1]))
            continue
        if held is None:
            changes.append(Change(integration_id, Action.CREATE, config=config))
            continue
        value, revision = held
        try:
            current: IntegrationConfig | None = IntegrationConfig.from_bytes(value)
        except ValueError:
            current = None
        config = keep_pause(config, current)
        after = _flat(config.model_dump(mode="json"))
        before = (
            _flat(current.model_dump(mode="json"))
            if current is not None
            else {"(stored config)": "invalid"}
        )
        fields = [
            FieldChange(path, before.get(path), after.get(path))
            for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)
        ]
        action = Action.UPDATE if fields else Action.UNCHANGED
        changes.append(Change(integration_id, action, fields, config, revision))
    return changes


def keep_pause(config: IntegrationConfig, current: IntegrationConfig | None) -> IntegrationConfig:
    """A schedule paused with `syncbus pause` stays paused unless the file says `paused:`.

    Pausing is what an operator does in an incident; a routine re-apply of the same file (from
    CI, say) must not quietly undo it. A file that names `paused` decides.
    """
    schedule = config.schedule
    if schedule is None or current is None or current.schedule is None:
        return config
    if "paused" in schedule.model_fields_set or schedule.paused == current.schedule.paused:
        return config
    kept = schedule.model_copy(update={"paused": current.schedule.paused})
    return config.model_copy(update={"schedule": kept})


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """`{"schedule": {"cron": ...}}` → `{"schedule.cron": ...}`; the `type` tags left out."""
    if isinstance(data, dict) and (data or not prefix):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "type":
                continue
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}
