"""CA keys in a hardware security module, over PKCS#11 (optional extra ``mailseal[hsm]``).

A :class:`Pkcs11Token` is a logged-in connection to one token of a PKCS#11 module (an HSM
vendor's library, or SoftHSM2 in tests). :func:`generate_key` makes a key pair whose private
half is created inside the token as sensitive and non-extractable, so it never exists outside
it; :func:`find_key` returns a :class:`Pkcs11Key`, which implements the
:class:`~mailseal.keys.base.PrivateKey` protocol and so signs certificates, CRLs, OCSP
responses and messages like a software key. :attr:`Pkcs11Key.uri` is an RFC 7512 reference
(``pkcs11:token=...;object=...;type=private``, never a PIN) that a CA stores to find the key
again.

PKCS#11 keeps the login state per process and per token: logging in a second time is refused
by the module without even checking the PIN, and logging out of one session logs out every
other. Tokens opened more than once in a process therefore share one session, one lock and one
login (the PIN of a second opening must match the first); every call into the module holds
that lock, so a token may be used from many threads. A session that the module has closed or
logged out is reopened once, transparently.

The module reads its configuration (``SOFTHSM2_CONF`` for SoftHSM2) and the list of tokens
when it is first loaded: a token initialised later is seen after the process restarts. Open
tokens after forking worker processes, not before: a PKCS#11 module does not survive a fork.

The PIN is held in memory for re-login and is never logged nor shown in a message or repr.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, unquote_to_bytes

from asn1crypto import core as asn1_core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mailseal.errors import AlgorithmError, HsmError
from mailseal.keys.base import KeyType, SignatureScheme
from mailseal.keys.software import hash_algorithm

if TYPE_CHECKING:
    from pkcs11 import Session, Token

__all__ = [
    "HSM_KEY_TYPES",
    "KeyProtection",
    "Pkcs11Key",
    "Pkcs11PublicKey",
    "Pkcs11Token",
    "find_key",
    "generate_key",
    "key_uri",
    "parse_key_uri",
    "pin_from_env",
    "pin_from_file",
]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

Pkcs11PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class _KeySpec:
    """How to generate one key type: the PKCS#11 key type name and its size or curve."""

    pkcs11_type: str  # name of a pkcs11.KeyType member
    bits: int = 0  # RSA modulus size
    curve_oid: str = ""  # EC or Edwards curve (RFC 5480, RFC 8410)


#: Key types :func:`generate_key` makes. The S/MIME Baseline Requirements §6.1.5 admit RSA of
#: at least 2048 bits and the NIST curves P-256, P-384 and P-521; RFC 8410 adds Ed25519/Ed448.
HSM_KEY_TYPES: Final[dict[str, _KeySpec]] = {
    "rsa2048": _KeySpec("RSA", bits=2048),
    "rsa3072": _KeySpec("RSA", bits=3072),
    "rsa4096": _KeySpec("RSA", bits=4096),
    "p256": _KeySpec("EC", curve_oid="1.2.840.10045.3.1.7"),
    "p384": _KeySpec("EC", curve_oid="1.3.132.0.34"),
    "p521": _KeySpec("EC", curve_oid="1.3.132.0.35"),
    "ed25519": _KeySpec("EC_EDWARDS", curve_oid="1.3.101.112"),
    "ed448": _KeySpec("EC_EDWARDS", curve_oid="1.3.101.113"),
}

_GENERATION_MECHANISM: Final[dict[str, str]] = {
    "RSA": "RSA_PKCS_KEY_PAIR_GEN",
    "EC": "EC_KEY_PAIR_GEN",
    "EC_EDWARDS": "EC_EDWARDS_KEY_PAIR_GEN",
}

_EC_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}
# Edwards curves by OID (RFC 8410) or by the printable name PKCS#11 3.0 also allows.
_EDWARDS_CURVES: Final[dict[str, KeyType]] = {
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
    "edwards25519": "ed25519",
    "edwards448": "ed448",
}

# Signing mechanisms per scheme and hash. RSA hashes on the token; ECDSA hashes here and signs
# the digest with CKM_ECDSA, which every token has (SoftHSM2 has no CKM_ECDSA_SHA256). SHA-1 is
# not offered: it is refused for new signatures.
_RSA_PKCS1: Final[dict[str, str]] = {
    "sha224": "SHA224_RSA_PKCS",
    "sha256": "SHA256_RSA_PKCS",
    "sha384": "SHA384_RSA_PKCS",
    "sha512": "SHA512_RSA_PKCS",
}
# RSASSA-PSS: (mechanism, hash mechanism, MGF1 hash, salt length = hash length, RFC 4056)
_RSA_PSS: Final[dict[str, tuple[str, str, str, int]]] = {
    "sha224": ("SHA224_RSA_PKCS_PSS", "SHA224", "SHA224", 28),
    "sha256": ("SHA256_RSA_PKCS_PSS", "SHA256", "SHA256", 32),
    "sha384": ("SHA384_RSA_PKCS_PSS", "SHA384", "SHA384", 48),
    "sha512": ("SHA512_RSA_PKCS_PSS", "SHA512", "SHA512", 64),
}

# Errors after which the session is reopened (with a fresh login) and the call tried once more.
_STALE_SESSION: Final[tuple[str, ...]] = (
    "SessionClosed",
    "SessionHandleInvalid",
    "UserNotLoggedIn",
    "DeviceRemoved",
    "TokenNotPresent",
)


def _p11() -> ModuleType:
    """python-pkcs11, imported on first use: it is an optional dependency."""
    try:
        import pkcs11
    except ImportError:
        raise HsmError(
            "HSM support is not installed: install it with pip install 'mailseal[hsm]'"
        ) from None
    return pkcs11


def _error_name(exc: BaseException) -> str:
    return type(exc).__name__


def _is_p11_error(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is a python-pkcs11 exception, optionally one of the classes ``names``."""
    if not type(exc).__module__.startswith("pkcs11"):
        return False
    return not names or _error_name(exc) in names


# --------------------------------------------------------------------------------------------
# PINs


def pin_from_env(var: str) -> str:
    """The token PIN from environment variable ``var``."""
    value = os.environ.get(var)
    if value is None:
        raise HsmError(f"environment variable {var} is not set: put the token's user PIN in it")
    if not value:
        raise HsmError(f"environment variable {var} is empty: put the token's user PIN in it")
    return value


def pin_from_file(path: str | os.PathLike[str]) -> str:
    """The token PIN from the first line of file ``path`` (one trailing newline is dropped)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HsmError(f"PIN file {p} does not exist") from None
    except UnicodeDecodeError:
        raise HsmError(f"PIN file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise HsmError(f"PIN file {p} cannot be read ({exc.strerror})") from None
    pin = text.removesuffix("\n").removesuffix("\r")
    if not pin:
        raise HsmError(f"PIN file {p} is empty: write the token's user PIN in it")
    if "\n" in pin:
        raise HsmError(f"PIN file {p} has more than one line: keep only the PIN in it")
    return pin


# --------------------------------------------------------------------------------------------
# Key references (RFC 7512)


def key_uri(token_label: str, key_label: str) -> str:
    """The RFC 7512 URI of private key ``key_label`` on token ``token_label``."""
    token = quote(token_label, safe="")
    obj = quote(key_label, safe="")
    return f"pkcs11:token={token};object={obj};type=private"


def parse_key_uri(uri: str) -> tuple[str | None, str]:
    """``(token label or None, key label)`` from a ``pkcs11:`` URI made by :func:`key_uri`
    (or by another tool: ``token``, ``object`` and ``type`` are read, other attributes ignored).
    """
    if not uri.startswith("pkcs11:"):
        raise HsmError("the key reference is not a pkcs11: URI")
    path, _, query = uri[len("pkcs11:") :].partition("?")
    names = {part.partition("=")[0] for part in [*path.split(";"), *query.split("&")]}
    if names & {"pin-value", "pin-source"}:
        raise HsmError(
            "the key reference carries a PIN: remove it and give the PIN separately "
            "(an environment variable or a file)"
        )
    attrs: dict[str, str] = {}
    for part in path.split(";"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise HsmError(f"malformed pkcs11: URI attribute {name!r}")
        try:
            attrs[name] = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise HsmError(f"pkcs11: URI attribute {name!r} is not UTF-8") from None
    if attrs.get("type", "private") != "private":
        raise HsmError(f"the pkcs11: URI names a {attrs['type']} object, not a private key")
    obj = attrs.get("object")
    if not obj:
        raise HsmError("the pkcs11: URI names no key (object=...)")
    return attrs.get("token"), obj


# --------------------------------------------------------------------------------------------
# Tokens


@dataclass(eq=False)
class _Login:
    """The one session and login a process has on a token (see the module docstring)."""

    key: tuple[str, str, bytes]
    token: Token
    pin: str = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock)
    session: Session | None = None
    generation: int = 0
    users: int = 0


# PKCS#11 login state is global to the process, so the sharing of logins must be too.
_LOGINS: dict[tuple[str, str, bytes], _Login] = {}
_LOGINS_LOCK = threading.Lock()


def _pin_error(exc: BaseException, label: str) -> HsmError | None:
    """The message for a C_Login failure, or None when ``exc`` is not about the PIN."""
    name = _error_name(exc)
    if name in ("PinIncorrect", "PinInvalid", "PinLenRange"):
        return HsmError(f"wrong PIN for token {label!r}")
    if name == "PinLocked":
        return HsmError(
            f"the user PIN of token {label!r} is locked after too many wrong PINs: "
            "the security officer must reset it"
        )
    if name == "PinExpired":
        return HsmError(f"the user PIN of token {label!r} has expired: set a new one")
    if name == "UserPinNotInitialized":
        return HsmError(f"token {label!r} has no user PIN yet: initialise it first")
    return None


def _open_session(login: _Login, label: str, *, first: bool) -> Session:
    """Open a read/write session on ``login.token`` and log the user in."""
    try:
        return login.token.open(rw=True, user_pin=login.pin)
    except Exception as exc:
        if not _is_p11_error(exc):
            raise
        pin_error = _pin_error(exc, label)
        if pin_error is not None:
            raise pin_error from None
        if _is_p11_error(exc, "UserAlreadyLoggedIn", "UserAnotherAlreadyLoggedIn"):
            if first:
                # The module would accept any PIN now: refuse rather than skip the check.
                raise HsmError(
                    f"token {label!r} is already logged in by other code in this process; "
                    "open it only through mailseal"
                ) from None
            # Our session was lost but the login survived it: a new session inherits it.
            try:
                return login.token.open(rw=True)
            except Exception as exc2:
                if not _is_p11_error(exc2):
                    raise
                raise HsmError(
                    f"cannot open a session on token {label!r} ({_error_name(exc2)})"
                ) from None
        raise HsmError(f"cannot open a session on token {label!r} ({_error_name(exc)})") from None


class Pkcs11Token:
    """A logged-in connection to the token labelled ``label`` in PKCS#11 module ``module``.

    Use as a context manager or call :meth:`close`. Raises :class:`~mailseal.errors.HsmError`
    when the module file is missing or not a PKCS#11 module, no token has that label, or the
    PIN is wrong or locked.
    """

    __slots__ = ("_closed", "_label", "_login", "_module")

    def __init__(self, module: str | os.PathLike[str], label: str, pin: str) -> None:
        self._module = Path(module)
        self._label = label
        self._closed = True
        if not label:
            raise HsmError("give the label of the token")
        if not pin:
            raise HsmError(f"give the user PIN of token {label!r}")
        p11 = _p11()
        if not self._module.is_file():
            raise HsmError(
                f"PKCS#11 module {self._module} not found: install the HSM's PKCS#11 library "
                "(SoftHSM2: apt-get install softhsm2) or fix the module path"
            )
        real = os.path.realpath(self._module)
        try:
            lib = p11.lib(real)
        except Exception as exc:
            if not _is_p11_error(exc):
                raise
            raise HsmError(f"{self._module} cannot be loaded as a PKCS#11 module ({exc})") from None
        token = self._find_token(lib, label)
        key = (real, label, bytes(token.serial))
        with _LOGINS_LOCK:
            login = _LOGINS.get(key)
            if login is None:
                login = _Login(key=key, token=token, pin=pin)
                login.session = _open_session(login, label, first=True)
                _LOGINS[key] = login
            elif not hmac.compare_digest(login.pin.encode(), pin.encode()):
                raise HsmError(f"wrong PIN for token {label!r}")
            login.users += 1
        self._login = login
        self._closed = False

    def _find_token(self, lib: Any, label: str) -> Token:
        try:
            token: Token = lib.get_token(token_label=label)
        except Exception as exc:
            if _is_p11_error(exc, "NoSuchToken"):
                try:
                    present = sorted(t.label for t in lib.get_tokens())
                except Exception:  # the list only improves the message
                    present = []
                listing = ", ".join(repr(t) for t in present if t) or "none"
                raise HsmError(
                    f"no token labelled {label!r} in {self._module} (tokens present: "
                    f"{listing}); initialise one (SoftHSM2: softhsm2-util --init-token --free "
                    f"--label {label!r}) or fix the label"
                ) from None
            if _is_p11_error(exc, "MultipleTokensReturned"):
                raise HsmError(
                    f"several tokens in {self._module} are labelled {label!r}: relabel them"
                ) from None
            if _is_p11_error(exc):
                raise HsmError(
                    f"cannot list the tokens of {self._module} ({_error_name(exc)})"
                ) from None
            raise
        return token

    @property
    def label(self) -> str:
        return self._label

    @property
    def module(self) -> Path:
        return self._module

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Pkcs11Token {self._label!r} in {str(self._module)!r} ({state})>"

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this connection; the last one for a token logs out and closes the session."""
        if self._closed:
            return
        self._closed = True
        login = self._login
        with _LOGINS_LOCK, login.lock:
            login.users -= 1
            if login.users > 0:
                return
            _LOGINS.pop(login.key, None)
            session, login.session = login.session, None
            if session is not None:
                try:
                    session.close()
                except Exception as exc:
                    if not _is_p11_error(exc):
                        raise
                    _log.debug("closing the session on token %r: %s", self._label, exc)

    def _run(self, operation: Callable[[Session, int], _T], what: str) -> _T:
        """``operation(session, generation)`` under the token lock, the session reopened once
        if the module lost it. The generation changes whenever the session is reopened (object
        handles from an older one are stale). ``what`` names the operation in error messages."""
        login = self._login
        with login.lock:
            for attempt in (1, 2):
                if self._closed:
                    raise HsmError(f"the connection to token {self._label!r} is closed")
                if login.session is None:
                    login.session = _open_session(login, self._label, first=False)
                    login.generation += 1
                try:
                    return operation(login.session, login.generation)
                except Exception as exc:
                    if not _is_p11_error(exc):
                        raise
                    if attempt == 1 and _is_p11_error(exc, *_STALE_SESSION):
                        _log.info(
                            "session on token %r lost (%s); reopening",
                            self._label,
                            _error_name(exc),
                        )
                        self._drop_session()
                        continue
                    raise self._translate(exc, what) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_session(self) -> None:
        login = self._login
        session, login.session = login.session, None
        if session is not None:
            try:
                session.close()
            except Exception as exc:
                if not _is_p11_error(exc):
                    raise

    def _translate(self, exc: BaseException, what: str) -> HsmError | AlgorithmError:
        name = _error_name(exc)
        if name in ("MechanismInvalid", "MechanismParamInvalid", "KeyTypeInconsistent"):
            return AlgorithmError(f"token {self._label!r} cannot {what} ({name})")
        if name in ("KeySizeRange", "DomainParamsInvalid", "CurveNotSupported"):
            return AlgorithmError(f"token {self._label!r} cannot {what}: unsupported key ({name})")
        if name in ("TokenWriteProtected", "SessionReadOnly"):
            return HsmError(f"token {self._label!r} is read-only: cannot {what}")
        if name == "DeviceMemory":
            return HsmError(f"token {self._label!r} is full: cannot {what}")
        return HsmError(f"token {self._label!r} failed to {what} ({name})")

    def key_labels(self) -> list[str]:
        """The labels of the private keys on the token (labels are not secret)."""
        p11 = _p11()

        def op(session: Session, _generation: int) -> list[str]:
            return _private_labels(session, p11)

        return self._run(op, "list its keys")


# --------------------------------------------------------------------------------------------
# Public keys from token attributes


def _der_value(der: bytes, what: str) -> Any:
    try:
        return asn1_core.load(bytes(der), strict=True)
    except (ValueError, TypeError):
        raise HsmError(f"the token returned a malformed {what}") from None


def _curve_name(ec_params: bytes) -> str:
    """The dotted OID (or Edwards curve name) in a CKA_EC_PARAMS value."""
    value = _der_value(ec_params, "CKA_EC_PARAMS")
    if isinstance(value, asn1_core.ObjectIdentifier):
        return str(value.dotted)
    if isinstance(value, asn1_core.PrintableString):
        return str(value.native)
    raise HsmError("the token's key has explicit curve parameters: only named curves are used")


def _ec_point(raw: bytes, length: int) -> bytes:
    """The ``length``-byte point in CKA_EC_POINT: a DER OCTET STRING per the standard, bare
    from some tokens (a bare point may also parse as DER, hence the length check)."""
    raw = bytes(raw)
    try:
        inner = bytes(asn1_core.OctetString.load(raw, strict=True).native)
    except (ValueError, TypeError):
        return raw
    return inner if len(inner) == length else raw


def _public_key_from(attrs: dict[Any, Any], p11: ModuleType) -> Pkcs11PublicKey:
    a = p11.Attribute
    kt = attrs[a.KEY_TYPE]
    if kt == p11.KeyType.RSA:
        n = int.from_bytes(bytes(attrs[a.MODULUS]), "big")
        e = int.from_bytes(bytes(attrs[a.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if kt == p11.KeyType.EC:
        oid = _curve_name(attrs[a.EC_PARAMS])
        curve = _EC_CURVES.get(oid)
        if curve is None:
            raise AlgorithmError(f"the token's EC key is on an unsupported curve ({oid})")
        c = curve()
        point = _ec_point(attrs[a.EC_POINT], 1 + 2 * ((c.key_size + 7) // 8))
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(c, point)
        except ValueError:
            raise HsmError("the token returned a malformed EC public key") from None
    if kt == p11.KeyType.EC_EDWARDS:
        name = _curve_name(attrs[a.EC_PARAMS])
        kind = _EDWARDS_CURVES.get(name)
        if kind == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_ec_point(attrs[a.EC_POINT], 32))
        if kind == "ed448":
            return ed448.Ed448PublicKey.from_public_bytes(_ec_point(attrs[a.EC_POINT], 57))
        raise AlgorithmError(f"the token's Edwards key is on an unsupported curve ({name})")
    raise AlgorithmError(f"the token's key type {kt!r} cannot sign certificates")


def _read_public_key(session: Session, private: Any, p11: ModuleType) -> Pkcs11PublicKey:
    """The public half of ``private``: the public-key object with the same CKA_ID (else the
    same label); for RSA the private key's own modulus and exponent also do."""
    a = p11.Attribute
    kt = private[a.KEY_TYPE]
    key_id = bytes(private[a.ID] or b"")
    query: dict[Any, Any] = {a.CLASS: p11.ObjectClass.PUBLIC_KEY, a.KEY_TYPE: kt}
    query.update({a.ID: key_id} if key_id else {a.LABEL: private[a.LABEL]})
    publics = list(session.get_objects(query))
    if len(publics) == 1:
        obj = publics[0]
        wanted = (
            [a.KEY_TYPE, a.MODULUS, a.PUBLIC_EXPONENT]
            if kt == p11.KeyType.RSA
            else [a.KEY_TYPE, a.EC_PARAMS, a.EC_POINT]
        )
        return _public_key_from(obj.get_attributes(wanted), p11)
    if kt == p11.KeyType.RSA:
        return _public_key_from(
            private.get_attributes([a.KEY_TYPE, a.MODULUS, a.PUBLIC_EXPONENT]), p11
        )
    label = private[a.LABEL]
    if not publics:
        raise HsmError(
            f"the token holds no public key for key {label!r}: import the public key "
            "with the same label and CKA_ID"
        )
    raise HsmError(f"the token holds several public keys for key {label!r}: keep only one")


# --------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True, slots=True)
class KeyProtection:
    """What the token says about how a private key is protected."""

    sensitive: bool  # CKA_SENSITIVE: the secret value cannot be read
    extractable: bool  # CKA_EXTRACTABLE: the key can be wrapped out of the token
    always_sensitive: bool  # CKA_ALWAYS_SENSITIVE: it has been sensitive since creation
    never_extractable: bool  # CKA_NEVER_EXTRACTABLE: it has never been extractable

    @property
    def hardware_bound(self) -> bool:
        """The key was made on the token and has never been able to leave it."""
        return (
            self.sensitive
            and not self.extractable
            and self.always_sensitive
            and self.never_extractable
        )


class Pkcs11Key:
    """A private key on a PKCS#11 token: a :class:`~mailseal.keys.base.PrivateKey`.

    Get one with :func:`find_key`. Signing goes through the token's lock; the key object is
    looked up again when the token's session has been reopened.
    """

    __slots__ = ("_cache", "_key_type", "_label", "_public", "_token")

    def __init__(self, token: Pkcs11Token, label: str, public_key: Pkcs11PublicKey) -> None:
        self._token = token
        self._label = label
        self._public = public_key
        self._cache: tuple[int, Any] | None = None
        if isinstance(public_key, rsa.RSAPublicKey):
            self._key_type: KeyType = "rsa"
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            self._key_type = "ec"
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            self._key_type = "ed25519"
        else:
            self._key_type = "ed448"

    def __repr__(self) -> str:
        return f"<Pkcs11Key {self.uri} ({self._key_type} {self.key_size})>"

    @property
    def token(self) -> Pkcs11Token:
        return self._token

    @property
    def label(self) -> str:
        return self._label

    @property
    def uri(self) -> str:
        """The RFC 7512 reference a CA stores to find the key again (no PIN in it)."""
        return key_uri(self._token.label, self._label)

    reference = uri

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def key_size(self) -> int:
        k = self._public
        if isinstance(k, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return int(k.key_size)
        return 255 if isinstance(k, ed25519.Ed25519PublicKey) else 448

    def public_key(self) -> Pkcs11PublicKey:
        return self._public

    def _object(self, session: Session, generation: int) -> Any:
        """The private-key object in the current session (cached per session generation)."""
        cached = self._cache
        if cached is not None and cached[0] == generation:
            return cached[1]
        obj = _get_private(session, self._token.label, self._label)
        self._cache = (generation, obj)
        return obj

    def protection(self) -> KeyProtection:
        """How the token protects the private key (read from the token on each call)."""
        p11 = _p11()
        a = p11.Attribute
        names = [a.SENSITIVE, a.EXTRACTABLE, a.ALWAYS_SENSITIVE, a.NEVER_EXTRACTABLE]

        def op(session: Session, generation: int) -> dict[Any, Any]:
            return dict(self._object(session, generation).get_attributes(names))

        attrs = self._token._run(op, f"read the attributes of key {self._label!r}")
        return KeyProtection(
            sensitive=bool(attrs[a.SENSITIVE]),
            extractable=bool(attrs[a.EXTRACTABLE]),
            always_sensitive=bool(attrs[a.ALWAYS_SENSITIVE]),
            never_extractable=bool(attrs[a.NEVER_EXTRACTABLE]),
        )

    def _mechanism(
        self, scheme: SignatureScheme, p11: ModuleType
    ) -> tuple[Any, Any, hashes.HashAlgorithm | None]:
        """(mechanism, mechanism parameter, hash to apply here first) for ``scheme``."""
        kt = self._key_type
        if scheme.kind in ("rsa-pkcs1", "rsa-pss", "ecdsa") and scheme.hash == "sha1":
            raise AlgorithmError("SHA-1 is refused for new signatures: use SHA-256 or stronger")
        if scheme.kind == "rsa-pkcs1" and kt == "rsa":
            name = _RSA_PKCS1.get(scheme.hash)
            if name is not None:
                return getattr(p11.Mechanism, name), None, None
        elif scheme.kind == "rsa-pss" and kt == "rsa":
            pss = _RSA_PSS.get(scheme.hash)
            if pss is not None:
                mech, hash_mech, mgf, salt = pss
                param = (getattr(p11.Mechanism, hash_mech), getattr(p11.MGF, mgf), salt)
                return getattr(p11.Mechanism, mech), param, None
        elif scheme.kind == "ecdsa" and kt == "ec":
            return p11.Mechanism.ECDSA, None, hash_algorithm(scheme.hash)
        elif scheme.kind == kt and kt in ("ed25519", "ed448"):
            return p11.Mechanism.EDDSA, None, None
        else:
            raise AlgorithmError(f"a {kt} key cannot make a {scheme.kind} signature")
        raise AlgorithmError(f"unsupported digest algorithm {scheme.hash!r} for {scheme.kind}")

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` on the token. ECDSA signatures come back as DER Ecdsa-Sig-Value
        (RFC 5480), not the raw r||s of PKCS#11."""
        p11 = _p11()
        mechanism, param, prehash = self._mechanism(scheme, p11)
        payload = bytes(data)
        if prehash is not None:
            h = hashes.Hash(prehash)
            h.update(payload)
            payload = h.finalize()

        def op(session: Session, generation: int) -> bytes:
            obj = self._object(session, generation)
            return bytes(obj.sign(payload, mechanism=mechanism, mechanism_param=param))

        sig = self._token._run(op, f"make a {scheme.kind} signature with key {self._label!r}")
        if scheme.kind != "ecdsa":
            return sig
        if not sig or len(sig) % 2:
            raise HsmError(f"token {self._token.label!r} returned a malformed ECDSA signature")
        half = len(sig) // 2
        r = int.from_bytes(sig[:half], "big")
        s = int.from_bytes(sig[half:], "big")
        return encode_dss_signature(r, s)


def _private_labels(session: Session, p11: ModuleType) -> list[str]:
    objs = session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY})
    return sorted(str(o[p11.Attribute.LABEL]) for o in objs)


def _get_private(session: Session, token_label: str, key_label: str) -> Any:
    p11 = _p11()
    try:
        return session.get_key(object_class=p11.ObjectClass.PRIVATE_KEY, label=key_label)
    except Exception as exc:
        if _is_p11_error(exc, "NoSuchKey"):
            try:
                labels = _private_labels(session, p11)
            except Exception:  # the list only improves the message
                labels = []
            listing = ", ".join(repr(x) for x in labels) or "none"
            raise HsmError(
                f"no private key labelled {key_label!r} on token {token_label!r} "
                f"(keys present: {listing}); generate it or fix the label"
            ) from None
        if _is_p11_error(exc, "MultipleObjectsReturned"):
            raise HsmError(
                f"several private keys on token {token_label!r} are labelled {key_label!r}: "
                "give each key a unique label"
            ) from None
        raise


def find_key(token: Pkcs11Token, label: str) -> Pkcs11Key:
    """The private key labelled ``label`` on ``token``; ``label`` may also be a ``pkcs11:`` URI
    such as :attr:`Pkcs11Key.uri`."""
    if label.startswith("pkcs11:"):
        uri_token, label = parse_key_uri(label)
        if uri_token is not None and uri_token != token.label:
            raise HsmError(
                f"the key reference names token {uri_token!r}, but token {token.label!r} is open"
            )
    if not label:
        raise HsmError("give the label of the key")
    p11 = _p11()

    def op(session: Session, _generation: int) -> Pkcs11PublicKey:
        private = _get_private(session, token.label, label)
        return _read_public_key(session, private, p11)

    public = token._run(op, f"read key {label!r}")
    return Pkcs11Key(token, label, public)


def generate_key(token: Pkcs11Token, label: str, key_type: str) -> Pkcs11PublicKey:
    """Generate a key pair of ``key_type`` (a key of :data:`HSM_KEY_TYPES`) labelled ``label``
    on ``token`` and return its public key. The private key is sensitive, non-extractable and
    may only sign; both halves share a random CKA_ID."""
    spec = HSM_KEY_TYPES.get(key_type)
    if spec is None:
        raise AlgorithmError(
            f"unknown key type {key_type!r}; expected one of {', '.join(HSM_KEY_TYPES)}"
        )
    if not label:
        raise HsmError("give the new key a label")
    p11 = _p11()
    a = p11.Attribute
    pkcs11_type = getattr(p11.KeyType, spec.pkcs11_type)
    mechanism = getattr(p11.Mechanism, _GENERATION_MECHANISM[spec.pkcs11_type])
    key_id = os.urandom(16)
    public_template: dict[Any, Any] = {
        a.TOKEN: True,
        a.PRIVATE: False,
        a.VERIFY: True,
        a.ENCRYPT: False,
        a.WRAP: False,
    }
    private_template: dict[Any, Any] = {
        a.TOKEN: True,
        a.PRIVATE: True,
        a.SENSITIVE: True,
        a.EXTRACTABLE: False,
        a.SIGN: True,
        a.DECRYPT: False,
        a.UNWRAP: False,
        a.DERIVE: False,
    }
    if spec.curve_oid:
        public_template[a.EC_PARAMS] = asn1_core.ObjectIdentifier(spec.curve_oid).dump()

    def op(session: Session, _generation: int) -> Pkcs11PublicKey:
        if mechanism not in session.token.slot.get_mechanisms():
            raise AlgorithmError(
                f"token {token.label!r} cannot generate {key_type} keys "
                f"(no {mechanism.name} mechanism)"
            )
        if next(iter(session.get_objects({a.LABEL: label})), None) is not None:
            raise HsmError(
                f"token {token.label!r} already holds an object labelled {label!r}: "
                "choose another label"
            )
        public, _private = session.generate_keypair(
            pkcs11_type,
            spec.bits or None,
            id=key_id,
            label=label,
            store=True,
            capabilities=p11.MechanismFlag.SIGN | p11.MechanismFlag.VERIFY,
            mechanism=mechanism,
            public_template=public_template,
            private_template=private_template,
        )
        wanted = (
            [a.KEY_TYPE, a.MODULUS, a.PUBLIC_EXPONENT]
            if spec.bits
            else [a.KEY_TYPE, a.EC_PARAMS, a.EC_POINT]
        )
        return _public_key_from(public.get_attributes(wanted), p11)

    return token._run(op, f"generate a {key_type} key")
