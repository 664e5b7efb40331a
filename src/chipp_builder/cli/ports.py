"""Whether the server can listen on a host and port, checked before a command does any work, and, when it
cannot, which process holds the port (from /proc, where there is one) and a free port to use instead."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp
NEARBY = 50  # how many ports above a busy one to try when suggesting a free one


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on host:port, or None when it could (the socket is closed again)."""
    # As uvicorn binds: IPv6 for an address with a colon, and SO_REUSEADDR, so that connections of a server
    # that just stopped (TIME_WAIT) do not count as busy, while another listening socket still does.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
    except OSError as exc:
        return exc
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str | None:
    """`process PID (its command line)` listening on the port, when /proc tells (only processes this user may
    look into); None otherwise. Cheap: it reads only when a port was found busy."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                continue
            command = " ".join((proc / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
        except OSError:
            continue  # another user's process, or one that just ended
        if len(command) > 100:
            command = command[:99] + "…"
        return f"process {proc.name} ({command})" if command else f"process {proc.name}"
    return None


def free_port_near(host: str, port: int) -> int | None:
    """The first port above `port` that the server could listen on, or None among the next few."""
    for candidate in range(port + 1, min(port + NEARBY, 65535) + 1):
        if bind_error(host, candidate) is None:
            return candidate
    return None


def port_problem(host: str, port: int) -> str | None:
    """None when a server can listen on host:port; else the one line saying why, what holds the port, and
    which port to use instead."""
    error = bind_error(host, port)
    if error is None:
        return None
    if error.errno != errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: {error.strerror or error}"
    holder = port_holder(port)
    held = f" by {holder}" if holder else " by another process"
    free = free_port_near(host, port)
    instead = (f"or choose a free port: --port {free} (make demo PORT={free})" if free
               else "or choose another port with --port N (make demo PORT=N)")
    return f"port {port} on {host} is already in use{held}: stop that server, {instead}"
