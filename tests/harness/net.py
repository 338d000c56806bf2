"""Ports on loopback for servers a test starts that must be told their port up front (nginx, a
federation server restarted on the same port, a metrics endpoint)."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at this moment, picked by the kernel (which hands ephemeral
    ports out in turn, so parallel workers do not race for the same one). A server that can bind
    port 0 itself and report it should do that instead."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
