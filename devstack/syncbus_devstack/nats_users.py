"""The NATS users of `deploy/nats/syncbus-accounts.conf`, with passwords made up for one run.

    users = NatsUsers.generate()                  # a fresh random password per user
    NatsServer(dir, config_file=ACCOUNTS_CONF, env=users.server_env())
    users.settings("dispatcher", url)             # NatsSettings: user, password, inbox prefix
    users.client_env("dispatcher")                # the same as SYNCBUS_NATS_* variables

The server reads each password from `SYNCBUS_NATS_PASSWORD_<USER>` in its environment (in
double quotes: see `server_env`); a service gets its own user's as `SYNCBUS_NATS_PASSWORD`.
Nothing is written to disk, and `repr` shows user names only.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from syncbus_shared.settings import NatsSettings

from .errors import StackError

ACCOUNTS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "syncbus-accounts.conf"
"""The server configuration, in the source tree (the devstack runs from a checkout)."""

USERS: tuple[str, ...] = (
    "scheduler",
    "dispatcher",
    "credentials",
    "health-monitor",
    "ingress",
    "application",
    "operator",
)
"""Every user the configuration defines; a service's user has the service's name."""


def inbox_prefix(user: str) -> str:
    """The only inbox prefix `user` may subscribe to (`_INBOX_<user>`)."""
    return f"_INBOX_{user}"


def password_variable(user: str) -> str:
    """The server-side environment variable holding `user`'s password."""
    return f"SYNCBUS_NATS_PASSWORD_{user.upper().replace('-', '_')}"


@dataclass(frozen=True)
class NatsUsers:
    passwords: Mapping[str, SecretStr] = field(repr=False)

    @classmethod
    def generate(cls) -> NatsUsers:
        return cls({user: SecretStr(secrets.token_urlsafe(24)) for user in USERS})

    def __repr__(self) -> str:
        return f"NatsUsers(users={sorted(self.passwords)})"

    def _password(self, user: str) -> SecretStr:
        try:
            return self.passwords[user]
        except KeyError:
            known = ", ".join(self.passwords)
            raise StackError(f"no NATS user {user!r} (known: {known})", component="nats") from None

    def server_env(self) -> dict[str, str]:
        """What nats-server needs in its environment to load the configuration.

        nats-server parses a variable's value as configuration, so an unquoted password that
        happens to look like a number, a size or a date (`2026-12-03...`) is not a string, or
        stops the server; quoted, it is taken as it is.
        """
        return {
            password_variable(u): f'"{p.get_secret_value()}"' for u, p in self.passwords.items()
        }

    def settings(self, user: str, url: str) -> NatsSettings:
        """How `user` connects (TLS and timeouts from the environment, as a service's would)."""
        return NatsSettings(
            url=url, user=user, password=self._password(user), inbox_prefix=inbox_prefix(user)
        )

    def client_env(self, user: str) -> dict[str, str]:
        """`user`'s identity as the SYNCBUS_NATS_* variables a service process reads."""
        return {
            "SYNCBUS_NATS_USER": user,
            "SYNCBUS_NATS_PASSWORD": self._password(user).get_secret_value(),
            "SYNCBUS_NATS_INBOX_PREFIX": inbox_prefix(user),
        }
