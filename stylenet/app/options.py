"""`stylenet app`'s options, checked before Gradio sees them: each bad one is a single StylenetError line.

`check` takes them all, for the command to call before the (slow) page is built; `server` checks again
at launch, as a port may be taken meanwhile. Nothing here needs Gradio. The address is tried with a
socket bound and closed at once, as the server binds it, so a port in use or a host of another machine
is said here rather than in a traceback from Gradio's server.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from pathlib import Path

from stylenet.errors import StylenetError

# The size forms Gradio's launch(max_file_size=...) reads (spaces ignored, any case): 200MB, 1GB, 512kb.
FILE_SIZE = re.compile(r"([0-9]+)(B|KB|MB|GB|TB)", re.IGNORECASE)
_UNITS = ("B", "KB", "MB", "GB", "TB")
SIZE_FORM = "a whole number and a unit (B, KB, MB, GB or TB), like 200MB or 1GB"
HOST_FIX = "pass 127.0.0.1 (this machine only), 0.0.0.0 (every network) or one of this machine's addresses"


def check(host: str, port: int, max_file_size: str | int, models_dir: Path | None = None) -> None:
    """Every option at once, the cheap ones first; `models_dir` is the folder the user named (None: the default)."""
    check_port(port)
    check_file_size(max_file_size)
    if models_dir is not None:
        check_models(models_dir)
    check_address(host, port)


def check_port(port: int) -> None:
    # 0 would let the system pick a port, but the address printed and opened would then be wrong.
    if not 1 <= port <= 65535:
        raise StylenetError(f"--port {port} is out of range: pass a port from 1 to 65535")


def check_file_size(size: str | int) -> None:
    if isinstance(size, int):
        number: int | None = size
        unit = "B"
    else:
        match = FILE_SIZE.fullmatch(size.replace(" ", ""))
        number, unit = (int(match[1]), match[2].upper()) if match else (None, "B")
    if number is None:
        raise StylenetError(f"--max-file-size {size} is not a size: give {SIZE_FORM}")
    if number <= 0:
        raise StylenetError(f"--max-file-size {size} would refuse every upload: give {SIZE_FORM}")
    if number * 1024 ** _UNITS.index(unit) >= 1 << 63:  # Gradio holds it in a 64-bit integer
        raise StylenetError(f"--max-file-size {size} is more than a file can be: give {SIZE_FORM}")


def check_models(models_dir: Path, missing_ok: bool = False) -> None:
    """A folder the user named must exist; `missing_ok` for the default one, which the first trained model makes."""
    if models_dir.is_dir() or (missing_ok and not models_dir.exists()):
        return
    what = "is not a folder" if models_dir.exists() else "does not exist"
    raise StylenetError(f"the models folder {models_dir} {what}: pass --models with the folder of your .pt files")


def check_address(host: str, port: int) -> None:
    """Binds and releases (host, port) on each address the host names; one line for the first reason it fails."""
    if not host:
        raise StylenetError("--host is empty: pass an address such as 127.0.0.1 (this machine only) or 0.0.0.0")
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:  # Gradio would serve it, then fail on the address it builds from it
        raise StylenetError(f"--host {host}: write an IPv6 address in brackets, as in a URL: [{host}]")
    name = host[1:-1] if bracketed else host
    try:
        addresses = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = (error.strerror if isinstance(error, OSError) and error.strerror else str(error)).lower()
        raise StylenetError(f"--host {host} is not an address or a known name ({reason}): {HOST_FIX}") from None
    failures = [failure for failure in map(_bind, addresses) if failure is not None]
    if any(failure.errno == errno.EADDRINUSE for failure in failures):
        raise StylenetError(f"port {port} is in use on {host}: pass --port with a free port")
    # A name such as localhost may stand for an IPv6 address as well, which the server skips where IPv6 is off.
    if failures and len(failures) == len(addresses):
        raise StylenetError(unbindable(host, port, failures[0]))


def unbindable(host: str, port: int, failure: OSError | None = None) -> str:
    """The line for an address the server cannot listen on, with the system's reason where there is one."""
    code = failure.errno if failure is not None else None
    reason = failure.strerror.lower() if failure is not None and failure.strerror else None
    if code == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine ({reason}): {HOST_FIX}"
    if code == errno.EACCES:
        return (
            f"port {port} on {host}: {reason} (ports below 1024 need administrator rights): pass --port 1024 or above"
        )
    if reason is not None:
        return f"cannot serve on {host} port {port} ({reason}): pass another --host or --port"
    return f"port {port} is in use (or cannot be bound on {host}): pass --port with a free port"


def _bind(address: tuple) -> OSError | None:
    family, kind, protocol, _, where = address
    with socket.socket(family, kind, protocol) as probe:
        if os.name == "posix":  # as the server binds there: a port whose old connections linger is free to it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as error:
            return error
    return None
