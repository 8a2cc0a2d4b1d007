"""Picking a free loopback port for a server that cannot be told to take port 0 and report it.

nats-server accepts `-p -1` and logs the port it took, so it never needs this. OpenBao binds
`:0` but then reports `:0` as its address, so for it we ask the kernel for a free port, close
the socket and pass the number on; the window in which another process can take it is small,
and the caller retries with a new port when the server says the address is in use.
"""

from __future__ import annotations

import socket


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *, also_free_above: int = 0) -> int:
    """A port the kernel just handed out on `host`; with `also_free_above=n`, ports p+1..p+n too.

    OpenBao's dev server puts its cluster listener on the API port + 1, so it asks for one more.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port + also_free_above > 65535:
            continue
        if all(_bindable(host, port + offset) for offset in range(1, also_free_above + 1)):
            return port
    raise OSError(f"no free port on {host} with {also_free_above} free ports above it")
