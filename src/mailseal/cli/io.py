"""Shared CLI plumbing: files and streams, passwords, certificates, errors."""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import click

from mailseal.errors import IdentityError, PasswordError, UsageError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "input_stream",
    "load_cert_paths",
    "output_stream",
    "read_password",
    "write_new_file",
]


def _open(path: str | Path, mode: str, failure: str) -> BinaryIO:
    try:
        return cast(BinaryIO, open(path, mode))
    except OSError as exc:
        raise UsageError(f"{failure}: {exc.strerror}") from None


@contextmanager
def input_stream(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with _open(path, "rb", f"cannot read {path}") as f:
        yield f


@contextmanager
def output_stream(path: str) -> Iterator[BinaryIO]:
    """Write to ``path`` atomically (a temporary file renamed on success), to a device or FIFO
    in place, or to stdout (``-``)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        st = os.stat(path)  # follows a symbolic link to what it names
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # a device (/dev/null), a FIFO or a socket: written in place, never replaced
        with _open(path, "wb", f"cannot write {path}") as f:
            yield f
        return
    # a regular file (through any symbolic link, which stays) or a new one: written beside it
    # and renamed over it once complete, so a failure leaves the old content
    target = Path(os.path.realpath(path)) if st is not None else Path(path)
    tmp = target.with_name(f".{target.name}.mailseal-tmp")
    f = _open(tmp, "wb", f"cannot write {path}")
    ok = False
    try:
        with f:
            yield f
        ok = True
    finally:
        if ok:
            os.replace(tmp, target)
        else:
            tmp.unlink(missing_ok=True)


def read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def read_password(env: str | None, file: str | None, *, what: str, needed: bool) -> bytes | None:
    """A password from an environment variable, a file (first line), or a prompt on the
    terminal. Never from the command line."""
    if env and file:
        raise UsageError("give either --password-env or --password-file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise PasswordError(f"the environment variable {env} is not set")
        return value.encode()
    if file:
        data = read_file(file, "password file")
        return data.splitlines()[0] if data else b""
    if not needed:
        return None
    try:
        with open("/dev/tty"):
            pass
    except OSError:
        raise PasswordError(
            f"{what} needs a password and there is no terminal to ask: "
            "use --password-env VAR or --password-file FILE"
        ) from None
    return getpass.getpass(f"Password for {what}: ").encode()


def load_cert_paths(paths: tuple[str, ...], what: str) -> list[x509.Certificate]:
    """Certificates from PEM/DER files or directories of them."""
    from mailseal.keys.identity import load_certificates

    out: list[x509.Certificate] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(
                f for f in path.iterdir() if f.suffix.lower() in (".pem", ".crt", ".cer", ".der")
            )
            if not files:
                raise UsageError(f"{what} directory {p} holds no .pem/.crt/.cer/.der files")
            for f in files:
                out.extend(load_certificates(read_file(str(f), what), what=f"{what} {f}"))
        else:
            out.extend(load_certificates(read_file(p, what), what=f"{what} {p}"))
    return out


def fail(message: str) -> None:
    raise IdentityError(message)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file, 0600; an existing file is never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists already; choose another name") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
