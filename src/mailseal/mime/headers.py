"""Reading header values: Content-Type parameters, transfer encodings, addresses."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from mailseal._values import quick_init
from mailseal.errors import MalformedMessage
from mailseal.mime.reader import HeaderField

__all__ = ["ContentType", "addresses", "content_type", "find", "transfer_encoding"]


@quick_init
@dataclass(frozen=True, slots=True)
class ContentType:
    maintype: str
    subtype: str
    params: Mapping[str, str]
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
        if len(b) > 200 or not (b.isascii() and b.isprintable()):
            raise MalformedMessage("a multipart boundary is too long or not printable ASCII")
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
    value = f.value()
    fast = _fast_content_type_cached(value) if len(value) <= 200 else _fast_content_type(value)
    if fast is not None:
        return fast
    # anything unusual (RFC 2231 parameters, comments, odd quoting) goes to the email package;
    # bytes that are not ASCII cannot be part of a valid Content-Type and are replaced first
    value = value.encode("ascii", "replace").decode("ascii")
    import email.message  # the email package only for the rare header it is needed for
    import email.policy
    import email.utils

    try:
        msg = email.message.Message(policy=email.policy.compat32)
        msg["Content-Type"] = value
        ctype = msg.get_content_type()
        raw = value.split(";", 1)[0].strip().lower()
        if "/" not in raw:
            # compat32 falls back to text/plain for invalid values
            ctype = default
        params: dict[str, str] = {}
        for item in msg.get_params(failobj=[])[1:]:
            key, val = item
            key = key.lower()
            if key not in params:
                params[key] = (
                    email.utils.collapse_rfc2231_value(val) if isinstance(val, tuple) else val
                )
    except Exception as exc:  # the email package's own parse failures
        raise MalformedMessage(f"the Content-Type header cannot be parsed ({exc})") from None
    mt, _, st = ctype.partition("/")
    return ContentType(mt, st, params, True)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105
_FAST_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
_FAST_PARAM = re.compile(rf';\s*({_TOKEN})\s*=\s*(?:"([^"\\]*)"|({_TOKEN}))\s*')


@functools.lru_cache(maxsize=256)
def _fast_content_type_cached(value: str) -> ContentType | None:
    """:func:`_fast_content_type` remembered for short values: mail from one client repeats
    the same few Content-Type values. The parameters are read-only, as the result is shared."""
    ct = _fast_content_type(value)
    if ct is None:
        return None
    return ContentType(ct.maintype, ct.subtype, MappingProxyType(dict(ct.params)), ct.present)


def _fast_content_type(value: str) -> ContentType | None:
    """The plain shapes of Content-Type; None sends anything unusual to the email package."""
    m = _FAST_TYPE.match(value)
    if m is None or "*" in value or "(" in value:
        return None
    params: dict[str, str] = {}
    pos = m.end()
    n = len(value)
    while pos < n:
        p = _FAST_PARAM.match(value, pos)
        if p is None:
            if value[pos:].strip(" \t;") == "":
                break
            return None
        key = p.group(1).lower()
        if key not in params:
            params[key] = p.group(2) if p.group(2) is not None else p.group(3)
        pos = p.end()
    return ContentType(m.group(1).lower(), m.group(2).lower(), params, True)


def transfer_encoding(fields: Sequence[HeaderField]) -> str:
    f = find(fields, "content-transfer-encoding")
    if f is None:
        return "7bit"
    return f.value().strip().strip('"').lower() or "7bit"


_ADDR_SPEC = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")
# "Name <a@b>" with a plain display name, or a bare a@b
_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:[^<>()"@,;:\\]*<([^\s<>()@,;:"\\]+@[^\s<>()@,;:"\\]+)>|([^\s<>()@,;:"\\]+@[^\s<>()@,;:"\\]+))\s*'
)


def addresses(fields: Sequence[HeaderField], name: str) -> tuple[str, ...]:
    """The mail addresses in every ``name`` header field."""
    values = [f.value() for f in fields if f.lname == name.lower()]
    if not values:
        return ()
    simple = [_SIMPLE_ADDRESS.fullmatch(v) for v in values]
    if all(simple):
        return tuple(m.group(1) or m.group(2) for m in simple if m)
    import email.utils  # only for addresses the patterns above do not read

    try:
        found = email.utils.getaddresses(values)
    except (RecursionError, Exception):
        # deeply nested comments or groups: fall back to picking out addr-specs
        return tuple(dict.fromkeys(_ADDR_SPEC.findall(" ".join(values))))
    return tuple(addr for _, addr in found if "@" in addr)
