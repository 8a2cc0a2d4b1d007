"""`syncbus apply -f integrations.yaml`: declare integrations, see the diff, write them.

    syncbus apply -f integrations.yaml --dry-run     # the diff only
    syncbus apply -f integrations.yaml               # the diff, then write it
    syncbus apply -f integrations.yaml --prune       # also delete what the file leaves out

Exit codes (as the scheduler's commands): 0 applied or nothing to change; 1 refused (the file
declares something invalid, or a config changed while applying; nothing invalid is written);
2 usage (no such file, not YAML); 3 NATS unavailable. The scheduler and the dispatcher pick up
each change from the `integrations` bucket at once (no restart). Every write is a
compare-and-set, so a `syncbus pause` in between is not lost silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from .apply_plan import Action, Change, FileError, InvalidFileError, plan, read_file
from .common import NatsUrl
from .schedule_commands import (
    _DEFAULT_URL,
    EXIT_REFUSED,
    EXIT_USAGE,
    AsJson,
    CommandError,
    _fail,
    _print_json,
    _run,
)

_MARKS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.UNCHANGED: "=",
    Action.KEEP: "?",
}


_EMPTY_PRUNE = (
    "declares no integration, and with --prune that would delete every stored integration; "
    "refused (remove them with a file that declares the ones to keep)"
)


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)


def apply(
    file: Annotated[
        Path,
        typer.Option("-f", "--file", help="YAML file declaring integrations (see --help)."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff; write nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete stored integrations that the file leaves out."),
    ] = False,
    nats_url: NatsUrl = _DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Make the `integrations` bucket match a YAML file: validated first, then shown as a diff.

    The file: `integrations:` holding a list of integrations, each with integration_id, vendor,
    endpoint, credentials_path and optionally schedule, health, timeout_seconds and options
    (never secrets: those live in Vault at credentials_path).
    """
    from syncbus_adapters.registry import available_adapters  # noqa: PLC0415

    try:
        wanted = read_file(file, known_vendors=available_adapters())
    except FileError as exc:
        _fail("apply", str(exc), EXIT_USAGE, as_json)
    except InvalidFileError as exc:
        _refuse_file(file, exc.problems, as_json)
    if prune and not wanted:
        # An empty or truncated file is far likelier a mistake than "delete everything".
        _refuse_file(
            file,
            [_EMPTY_PRUNE],
            as_json,
        )

    async def go(nc: Any) -> dict[str, Any]:
        from nats.js.errors import KeyWrongLastSequenceError  # noqa: PLC0415

        from syncbus_shared import topology as t  # noqa: PLC0415

        js = nc.jetstream()
        kv = await js.key_value(t.KV_INTEGRATIONS)
        changes = plan(wanted, await _stored(js, kv), prune=prune)
        if not dry_run:
            for change in changes:
                try:
                    await _write(kv, change)
                except KeyWrongLastSequenceError:
                    raise CommandError(
                        f"the config of {change.integration_id!r} changed while applying "
                        "(another apply, pause or resume); run the command again",
                        EXIT_REFUSED,
                    ) from None
        return {
            "file": str(file),
            "dry_run": dry_run,
            "applied": not dry_run,
            "changes": [c.to_json() for c in changes],
        }

    result = _run(go, "apply", nats_url, as_json)
    if as_json:
        _print_json(result)
        return
    _print_diff(result)


async def _stored(js: Any, kv: Any) -> dict[str, tuple[bytes, int]]:
    """Every stored config with its revision (for the compare-and-set writes).

    Listed from the bucket stream's subjects, then read one by one, not with a KV watch: a
    watch can signal "no more" before its first entry arrives (nats-py decides that from the
    consumer's pending count), and a config missed here would be "created" over itself.
    """
    from nats.js.errors import KeyNotFoundError  # noqa: PLC0415

    from syncbus_shared import topology as t  # noqa: PLC0415

    prefix = f"$KV.{t.KV_INTEGRATIONS}."
    info = await js.stream_info(f"KV_{t.KV_INTEGRATIONS}", subjects_filter=f"{prefix}>")
    stored: dict[str, tuple[bytes, int]] = {}
    for subject in sorted(info.state.subjects or {}):
        key = subject.removeprefix(prefix)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # deleted (a delete marker keeps the subject listed)
            continue
        if entry.value:
            stored[key] = (entry.value, entry.revision)
    return stored


async def _write(kv: Any, change: Change) -> None:
    if change.action is Action.CREATE:
        assert change.config is not None
        await kv.create(change.integration_id, change.config.to_bytes())
    elif change.action is Action.UPDATE:
        assert change.config is not None
        await kv.update(change.integration_id, change.config.to_bytes(), last=change.revision)
    elif change.action is Action.DELETE:
        await kv.delete(change.integration_id, last=change.revision)


def _refuse_file(file: Path, problems: list[str], as_json: bool) -> NoReturn:
    sentence = (
        f"{file.name}: {problems[0]}"
        if len(problems) == 1
        else f"{file.name} has {len(problems)} problems; nothing was applied"
    )
    if as_json:
        _print_json({"error": sentence, "problems": problems, "exit_code": EXIT_REFUSED})
    else:
        typer.echo(f"syncbus apply: {sentence}", err=True)
        if len(problems) > 1:
            for problem in problems:
                typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(EXIT_REFUSED)


def _print_diff(result: dict[str, Any]) -> None:
    counts: dict[str, int] = {}
    for change in result["changes"]:
        action = Action(change["action"])
        counts[action.value] = counts.get(action.value, 0) + 1
        line = f"{_MARKS[action]} {change['integration_id']}"
        if action is Action.KEEP:
            line += "  (stored, not in the file; kept: --prune deletes it)"
        typer.echo(line)
        for item in change["fields"]:
            typer.echo(f"    {item['path']}: {_show(item['from'])} -> {_show(item['to'])}")
    summary = ", ".join(
        f"{counts[a.value]} {a.value}"
        for a in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.UNCHANGED, Action.KEEP)
        if a.value in counts
    )
    verb = "would apply" if result["dry_run"] else "applied"
    typer.echo(f"{verb}: {summary or 'nothing declared'}")


def _show(value: Any) -> str:
    return "(unset)" if value is None else repr(value)
