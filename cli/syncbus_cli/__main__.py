"""`python -m syncbus_cli` is the same as `syncbus`."""

from .main import app

app()
