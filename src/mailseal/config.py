"""One :class:`Settings` object for an organisation's data directory.

Only entry points (the command line, the server) build it; library code receives what it needs
as arguments (DESIGN.md rule 4: no settings read at import time).

The data directory (``--home``, else ``$MAILSEAL_HOME``, else ``$XDG_DATA_HOME/mailseal``, by
default ``~/.local/share/mailseal``) is created with mode 0700 and holds::

    mailseal.toml      these settings (no secret is ever written here)
    mailseal.db        the SQLite database (unless database_url names PostgreSQL)
    ca/                CA certificates (PEM)
    keys/              CA and responder keys, PKCS#8 encrypted with the CA passphrase (0600)
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mailseal.errors import UsageError

__all__ = ["CONFIG_NAME", "Settings", "default_home", "ensure_home", "resolve_home"]

CONFIG_NAME = "mailseal.toml"


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailseal"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """``home`` if given, else ``$MAILSEAL_HOME``, else :func:`default_home`."""
    if home:
        return Path(home).expanduser()
    env = os.environ.get("MAILSEAL_HOME")
    return Path(env).expanduser() if env else default_home()


def ensure_home(home: Path) -> Path:
    """Create the data directory (0700) and its ca/ and keys/ folders."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        for sub in ("ca", "keys"):
            (home / sub).mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the data directory {home}: {exc.strerror}") from None
    return home


@dataclass(frozen=True)
class Settings:
    """Everything an organisation's mailseal needs to find its database, keys and URLs."""

    home: Path
    organization: str = ""
    domains: tuple[str, ...] = ()
    database_url: str = ""
    base_url: str = "http://127.0.0.1:8080"
    #: "file" (PKCS#8 files under keys/, encrypted with the CA passphrase) or "pkcs11"
    key_backend: str = "file"
    #: where the CA passphrase comes from when no option says (an environment variable name
    #: or a file path; never the passphrase itself)
    passphrase_env: str = ""
    passphrase_file: str = ""
    pkcs11_module: str = ""
    pkcs11_token: str = ""
    pkcs11_pin_env: str = ""
    pkcs11_pin_file: str = ""
    #: who signs OCSP responses: "ca" (the CA key) or "delegated" (a responder certificate
    #: issued by the CA, RFC 6960 §4.2.2.2, renewed automatically)
    ocsp_responder: str = "ca"
    #: OCSP responses are valid this long and refreshed when less than half is left
    ocsp_validity_hours: int = 96
    #: CRLs are valid this long (BR §4.9.7: at most 10 days) and reissued at half-life
    crl_validity_hours: int = 168
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'mailseal.db'}"

    @property
    def initialized(self) -> bool:
        return self.config_path.is_file()

    # -- reading and writing ------------------------------------------------------------------
    @classmethod
    def load(cls, home: Path) -> Settings:
        """The settings of the data directory ``home`` (an error if it was never initialised)."""
        path = home / CONFIG_NAME
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"{home} is not a mailseal data directory (no {CONFIG_NAME}); "
                "run 'mailseal init' first, or give --home / MAILSEAL_HOME"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        known = {f.name for f in fields(cls)} - {"home", "extra"}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in known:
                values[key] = tuple(value) if key == "domains" else value
        try:
            return cls(home=home, extra={k: v for k, v in raw.items() if k not in known}, **values)
        except TypeError as exc:
            raise UsageError(f"{path}: {exc}") from None

    def save(self) -> None:
        """Write mailseal.toml (0600)."""
        lines = ["# mailseal settings (written by 'mailseal init'; no secrets here)"]
        for f in fields(self):
            if f.name in ("home", "extra"):
                continue
            lines.append(f"{f.name} = {_toml(getattr(self, f.name))}")
        tmp = self.config_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, self.config_path)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # a JSON string is a valid TOML basic string (same escapes)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
