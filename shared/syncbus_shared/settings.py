"""Settings every service shares, read from the environment (never at import time)."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SUBJECT = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


_SCHEMES = ("nats", "tls", "ws", "wss")


def _server_url_problem(server: str) -> str | None:
    """Why a NATS server URL cannot be used, or None (`host:port` alone means nats://)."""
    candidate = server if "://" in server else f"nats://{server}"
    try:
        parsed = urllib.parse.urlsplit(candidate)
        port = parsed.port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parsed.scheme not in _SCHEMES:
        return f"has scheme {parsed.scheme!r}; use one of {', '.join(_SCHEMES)}"
    if not parsed.hostname:
        return "names no host"
    if port is not None and not 1 <= port <= 65535:
        return "has a port outside 1-65535"
    return None


class NatsSettings(BaseSettings):
    """How to reach NATS, as whom, and over what. Env prefix `SYNCBUS_NATS_`.

    Each service connects as its own NATS user (see `deploy/nats/`), with its own inbox prefix:
    the server lets the credential service answer only to the dispatcher's and the
    health-monitor's prefixes, so a requester cannot steer a reply to someone else's subject.
    """

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_NATS_", hide_input_in_errors=True)

    url: str = Field(default="nats://127.0.0.1:4222", description="Comma-separated server URLs.")
    user: str | None = Field(default=None, description="NATS user of this service.")
    password: SecretStr | None = Field(default=None, description="Password of that user.")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Per attempt.")
    inbox_prefix: str = Field(
        default="_INBOX",
        description="Subject prefix of this connection's reply inboxes (e.g. _INBOX_dispatcher); "
        "must match the user's permissions.",
    )
    tls_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that signed the server's certificate (TLS on)."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, when the server verifies clients."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM key of that certificate.")
    tls_hostname: str | None = Field(
        default=None, description="Name the server certificate must carry (default: URL host)."
    )
    tls_handshake_first: bool = Field(
        default=False,
        description="Start TLS before the server's INFO (server `handshake_first: true`); "
        "no plaintext byte is ever exchanged.",
    )

    @field_validator("url")
    @classmethod
    def _url_names_servers(cls, value: str) -> str:
        """Refused here, not by nats-py, which loops at full CPU on a list with no server."""
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers:
            raise ValueError("names no server; give e.g. nats://127.0.0.1:4222")
        for server in servers:
            problem = _server_url_problem(server)
            if problem:
                raise ValueError(f"{server[:80]!r} {problem}")
        return value

    @field_validator("inbox_prefix")
    @classmethod
    def _inbox_prefix_is_a_plain_subject(cls, value: str) -> str:
        if not _SUBJECT.fullmatch(value):
            raise ValueError(
                "must be one or more dot-separated tokens of letters, digits, '_' or '-' "
                "(no wildcards, no spaces), e.g. _INBOX_dispatcher"
            )
        return value

    @model_validator(mode="after")
    def _client_certificate_comes_with_its_key(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "set both SYNCBUS_NATS_TLS_CERT_FILE and SYNCBUS_NATS_TLS_KEY_FILE, or neither"
            )
        return self

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]

    @property
    def tls_enabled(self) -> bool:
        return self.tls_ca_file is not None or self.tls_cert_file is not None


class TopologySettings(BaseSettings):
    """Stream, consumer and bucket settings applied by provisioning (`SYNCBUS_TOPOLOGY_`)."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_TOPOLOGY_")

    replicas: int = Field(
        default=1, ge=1, le=5, description="Stream and bucket replicas (R3 in production)."
    )
    request_dedup_window_seconds: float = Field(
        default=7200.0, gt=0, description="Nats-Msg-Id dedup window of SYNC_REQUESTS (>= 2 h)."
    )
    request_max_age_days: float = Field(
        default=14.0, gt=0, description="How long requests are kept."
    )
    result_max_age_days: float = Field(
        default=400.0, gt=0, description="How long results are kept."
    )
    dlq_max_age_days: float = Field(
        default=90.0, gt=0, description="How long dead letters are kept."
    )
    alert_max_age_days: float = Field(default=30.0, gt=0, description="How long alerts are kept.")
    dispatcher_ack_wait_seconds: float = Field(
        default=60.0, gt=0, description="Redelivery after this long without an ack or progress ack."
    )
    dispatcher_max_deliver: int = Field(
        default=50, ge=1, description="Deliveries before a message is given up."
    )
    sync_always: bool = Field(
        default=False, description="fsync every write of SYNC_REQUESTS (set in production)."
    )


class ServiceSettings(BaseSettings):
    """Common to every service process. Env prefix `SYNCBUS_`."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_")

    instance_id: str | None = Field(default=None, description="Defaults to host name and pid.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")


def _env_prefix(model_name: str) -> str | None:
    pending: list[type[BaseSettings]] = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__name__ == model_name:
            return str(cls.model_config.get("env_prefix", ""))
        pending.extend(cls.__subclasses__())
    return None


def describe_settings_error(exc: ValidationError, *, label: str = "setting") -> str:
    """`the setting SYNCBUS_DISPATCHER_BATCH_ATTEMPTS is not valid: Input should be ...`.

    `label` names what kind of setting it is (`NATS setting` in the CLI's messages).
    """
    first = exc.errors(include_input=False, include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in first["loc"])
    if not field:  # a rule across fields names its variables itself
        whole = f"{label}s" if label != "setting" else exc.title
        return f"the {whole} are not valid: {message}"
    prefix = _env_prefix(exc.title)
    name = f"{prefix}{field}".upper() if prefix is not None else f"{exc.title}.{field}"
    more = exc.error_count() - 1
    return f"the {label} {name} is not valid: {message}" + (
        f" (and {more} more problem(s))" if more else ""
    )
