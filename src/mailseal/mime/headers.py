"""Reading header values: Content-Type parameters, transfer encodings, addresses."""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailseal.errors import MalformedMessage
from mailseal.mime.reader import HeaderField

__all__ = ["ContentType", "addresses", "content_type", "find", "transfer_encoding"]

_BOUNDARY_OK = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass(frozen=True, slots=True)
class ContentType:
    maintype: str
    subtype: str
    params: dict[str, str]
    present: bool

    @property
    def value(self) -> str:
        return f"{self.maintype}/{self.subtype}"

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def boundary(self) -> bytes:
        b = self.param("boundary")
        if not b:
            raise MalformedMessage(f"a {self.value} part has no boundary parameter")
        if len(b) > 200 or not all(32 <= ord(c) < 127 for c in b):
            raise MalformedMessage("a multipart boundary is too long or not printable ASCII")
        if not _BOUNDARY_OK.fullmatch(b):
            # RFC 2046 §5.1.1 grammar; real mail sometimes breaks it, accept printable ASCII
            pass
        return b.encode("ascii")


def find(fields: Sequence[HeaderField], name: str) -> HeaderField | None:
    lname = name.lower()
    for f in fields:
        if f.lname == lname:
            return f
    return None


def content_type(fields: Sequence[HeaderField], default: str = "text/plain") -> ContentType:
    f = find(fields, "content-type")
    if f is None:
        mt, _, st = default.partition("/")
        return ContentType(mt, st, {}, False)
    msg = email.message.Message(policy=email.policy.compat32)
    msg["Content-Type"] = f.value()
    ctype = msg.get_content_type()
    raw = f.value().split(";", 1)[0].strip().lower()
    if "/" not in raw:
        # compat32 falls back to text/plain for invalid values
        ctype = default
    params: dict[str, str] = {}
    for item in msg.get_params(failobj=[])[1:]:
        key, val = item
        key = key.lower()
        if key not in params:
            params[key] = email.utils.collapse_rfc2231_value(val) if isinstance(val, tuple) else val
    mt, _, st = ctype.partition("/")
    return ContentType(mt, st, params, True)


def transfer_encoding(fields: Sequence[HeaderField]) -> str:
    f = find(fields, "content-transfer-encoding")
    if f is None:
        return "7bit"
    return f.value().strip().strip('"').lower() or "7bit"


def addresses(fields: Sequence[HeaderField], name: str) -> tuple[str, ...]:
    """The mail addresses in every ``name`` header field."""
    values = [f.value() for f in fields if f.lname == name.lower()]
    if not values:
        return ()
    return tuple(addr for _, addr in email.utils.getaddresses(values) if "@" in addr)
