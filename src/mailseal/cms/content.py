"""Content encryption for EnvelopedData and AuthEnvelopedData (RFC 5652 §6.3, RFC 5083).

The ciphers are data (DESIGN.md rule 5): AES-CBC with PKCS#7 padding (RFC 3565, RFC 5652
§6.3) for EnvelopedData, and AES-GCM with a 12-byte nonce and a 16-byte tag (RFC 5084 §3.2)
for AuthEnvelopedData. Both directions stream: memory does not depend on the message size, and
each chunk goes straight to one ``cryptography`` cipher context.

Decryption failures never tell a wrong key from corrupted ciphertext: bad CBC padding and a
wrong key give the same :class:`~mailseal.errors.DecryptionError`, so no padding oracle is
exposed (RFC 3218 §2.3 reasoning, applied to the content layer as well).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import AlreadyFinalized, InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    AEADEncryptionContext,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms import fastder as F
from mailseal.errors import AlgorithmError, DecryptionError, LimitExceeded, MalformedCMS, UsageError

__all__ = [
    "CIPHERS",
    "CIPHER_BY_OID",
    "DEFAULT_CIPHER",
    "UPDATE_INTO_SLACK",
    "ContentCipher",
    "ContentDecryptor",
    "ContentEncryptor",
    "new_key",
]


@dataclass(frozen=True, slots=True)
class ContentCipher:
    """A content-encryption algorithm: AES in CBC or GCM mode with a given key size."""

    name: str
    oid: str
    #: key size in bytes
    key_size: int
    #: authenticated (AES-GCM, for AuthEnvelopedData) or not (AES-CBC, for EnvelopedData)
    aead: bool


_BLOCK: Final = 16
#: RFC 5084 §3.2: a 12-octet nonce is recommended; it is the only size written or read here.
_GCM_NONCE: Final = 12
#: RFC 5084 §3.2: aes-ICVlen is 12..16 (default 12); mailseal always writes 16.
_GCM_TAG: Final = 16
_GCM_TAG_RANGE: Final = range(12, 17)

_AES128_CBC = ContentCipher("aes-128-cbc", O.AES128_CBC, 16, False)  # RFC 3565
_AES192_CBC = ContentCipher("aes-192-cbc", O.AES192_CBC, 24, False)  # RFC 3565
_AES256_CBC = ContentCipher("aes-256-cbc", O.AES256_CBC, 32, False)  # RFC 3565
_AES128_GCM = ContentCipher("aes-128-gcm", O.AES128_GCM, 16, True)  # RFC 5084 §3.2
_AES192_GCM = ContentCipher("aes-192-gcm", O.AES192_GCM, 24, True)  # RFC 5084 §3.2
_AES256_GCM = ContentCipher("aes-256-gcm", O.AES256_GCM, 32, True)  # RFC 5084 §3.2

#: Ciphers offered for new messages, by name. AES-192-GCM is read but not offered: RFC 8551
#: §2.7 names AES-128/256-GCM and AES-128/192/256-CBC only.
CIPHERS: dict[str, ContentCipher] = {
    c.name: c for c in (_AES256_GCM, _AES128_GCM, _AES256_CBC, _AES192_CBC, _AES128_CBC)
}
#: Every cipher that can be read, by OID.
CIPHER_BY_OID: dict[str, ContentCipher] = {
    c.oid: c for c in (_AES128_CBC, _AES192_CBC, _AES256_CBC, _AES128_GCM, _AES192_GCM, _AES256_GCM)
}
#: DESIGN.md rule 6: AES-256-GCM AuthEnvelopedData by default (RFC 8551 §2.7 MUST for AES-128-GCM
#: and AES-256-GCM; 256 bits for margin).
DEFAULT_CIPHER: Final = _AES256_GCM

#: Legacy and other ciphers named in the refusal message, so a person knows what they got.
_UNSUPPORTED_NAMES: Final[dict[str, str]] = {
    O.DES_EDE3_CBC: "3DES (des-ede3-cbc)",
    O.RC2_CBC: "RC2 (rc2-cbc)",
    O.DES_CBC: "DES (des-cbc)",
    "2.16.840.1.101.3.4.1.1": "aes-128-ecb",
    "2.16.840.1.101.3.4.1.7": "aes-128-ccm",
    "2.16.840.1.101.3.4.1.27": "aes-192-ccm",
    "2.16.840.1.101.3.4.1.47": "aes-256-ccm",
    "1.2.840.113549.1.9.16.3.18": "ChaCha20-Poly1305 (RFC 8103)",
}

#: ``update_into`` needs ``out`` at least ``len(data) + UPDATE_INTO_SLACK`` bytes long.
UPDATE_INTO_SLACK: Final = 2 * _BLOCK
#: the most content :meth:`ContentEncryptor.seal` takes in one call
SEAL_MAX: Final = 16 << 20

_WRONG_KEY = "the message cannot be decrypted: wrong key or corrupted ciphertext"
_EMPTY_OR_PARTIAL = "the encrypted content is empty or not a whole number of blocks"
_PARTIAL_BLOCK = "the encrypted content is not a whole number of AES blocks"
_TAMPERED = (
    "the message cannot be decrypted: the ciphertext or its authentication tag was modified "
    "(or the key is wrong)"
)


class _Scratch:
    """One reusable output buffer per cipher context.

    cryptography's ``update`` allocates (and zeroes) a fresh buffer per call; for 1 MiB chunks
    glibc serves those from freshly mapped pages, which made AES-CBC 2-10x slower than
    ``openssl speed`` on the same machine. Writing into a buffer that lives as long as the
    context and copying the result out once keeps ``update`` at OpenSSL's speed.
    """

    __slots__ = ("_buf", "_view")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._view = memoryview(self._buf)

    def view(self, data_length: int) -> memoryview:
        need = data_length + UPDATE_INTO_SLACK
        if len(self._buf) < need:
            self._view.release()
            self._buf = bytearray(need)
            self._view = memoryview(self._buf)
        return self._view


def new_key(cipher: ContentCipher) -> bytes:
    """A fresh random content-encryption key for ``cipher`` (RFC 5652 §6.3)."""
    return os.urandom(cipher.key_size)


def _aes(key: bytes) -> algorithms.AES:
    return algorithms.AES(key)


class ContentEncryptor:
    """Encrypt content in pieces: ``update`` as often as needed, then ``finalize`` once.

    A fresh IV (CBC, 16 bytes) or nonce (GCM, 12 bytes) is drawn for every encryptor, so a
    content-encryption key is never used twice with the same IV.
    """

    __slots__ = (
        "_aad",
        "_ctx",
        "_done",
        "_gcm",
        "_key",
        "_length",
        "_scratch",
        "_tag",
        "algorithm_der",
        "cipher",
        "iv",
    )

    def __init__(self, cipher: ContentCipher, key: bytes, *, aad: bytes | None = None) -> None:
        if len(key) != cipher.key_size:
            raise UsageError(
                f"{cipher.name} needs a {cipher.key_size}-byte key, not {len(key)} bytes"
            )
        self.cipher = cipher
        self._length = 0
        self._scratch = _Scratch()
        self._tag: bytes | None = None
        self._done = False
        # the cipher context is made on first use: content sealed in one piece (seal) needs none
        self._ctx: CipherContext | None = None
        self._gcm: AEADEncryptionContext | None = None
        self._key: bytes | None = key
        if cipher.aead:
            self._aad = aad or None
            self.iv = os.urandom(_GCM_NONCE)
            # RFC 5084 §3.2 GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING (12),
            #   aes-ICVlen INTEGER DEFAULT 12 }: the 16-byte tag must be stated
            params = der.sequence(der.octet_string(self.iv), der.integer(_GCM_TAG))
        else:
            if aad is not None:
                raise UsageError(f"{cipher.name} cannot authenticate additional data")
            self._aad = None
            self.iv = os.urandom(_BLOCK)
            # RFC 3565: the parameter is the IV as an OCTET STRING
            params = der.octet_string(self.iv)
        #: the contentEncryptionAlgorithm AlgorithmIdentifier, DER
        self.algorithm_der: bytes = der.sequence(der.oid(cipher.oid), params)

    def _context(self) -> CipherContext:
        if self._ctx is not None:
            return self._ctx
        if self._key is None:
            raise UsageError("the content encryptor was already used")
        if self.cipher.aead:
            gcm = Cipher(_aes(self._key), modes.GCM(self.iv)).encryptor()
            if self._aad:
                gcm.authenticate_additional_data(self._aad)
            self._gcm = gcm
            self._ctx = gcm
        else:
            self._ctx = Cipher(_aes(self._key), modes.CBC(self.iv)).encryptor()
        self._key = None
        return self._ctx

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt the whole content in one call (instead of ``update`` and ``finalize``; for
        content held in memory, at most :data:`SEAL_MAX` bytes). For GCM the :attr:`tag` is
        then available."""
        if self._done or self._ctx is not None or self._key is None:
            raise UsageError("seal() encrypts the whole content of a fresh encryptor")
        if len(plaintext) > SEAL_MAX:
            raise UsageError(f"seal() takes at most {SEAL_MAX} bytes; use update()")
        key, self._key = self._key, None
        self._done = True
        self._length = len(plaintext)
        if self.cipher.aead:
            out = AESGCM(key).encrypt(self.iv, plaintext, self._aad)
            self._tag = out[-_GCM_TAG:]
            return out[:-_GCM_TAG]
        pad = _BLOCK - len(plaintext) % _BLOCK
        ctx = Cipher(_aes(key), modes.CBC(self.iv)).encryptor()
        return ctx.update(plaintext + bytes((pad,)) * pad) + ctx.finalize()

    @staticmethod
    def ciphertext_length(cipher: ContentCipher, plaintext_length: int) -> int:
        """Bytes of ciphertext for ``plaintext_length`` bytes of content (the GCM tag is not
        included: it travels in the ``mac`` field)."""
        if cipher.aead:
            return plaintext_length
        return (plaintext_length // _BLOCK + 1) * _BLOCK

    def update(self, data: bytes) -> bytes:
        """Encrypt the next piece; the result may be shorter or longer than ``data`` (CBC works
        in whole blocks)."""
        view = self._scratch.view(len(data))
        return bytes(view[: self.update_into(data, view)])

    def update_into(self, data: bytes, out: bytearray | memoryview) -> int:
        """Like :meth:`update`, writing into ``out`` (at least ``len(data) + UPDATE_INTO_SLACK``
        bytes); returns how many bytes were written."""
        if self._done:
            raise UsageError("the content encryptor was already finalized")
        self._length += len(data)
        ctx = self._ctx if self._ctx is not None else self._context()
        try:
            return ctx.update_into(data, out)
        except ValueError as exc:  # GCM refuses more than 2^36 - 32 bytes (NIST SP 800-38D)
            raise LimitExceeded(
                f"too much content for one {self.cipher.name} key ({exc})"
            ) from None

    def finalize(self) -> bytes:
        """The last ciphertext bytes: the PKCS#7-padded final block for CBC (RFC 5652 §6.3),
        nothing for GCM (whose :attr:`tag` is then available)."""
        if self._done:
            raise UsageError("the content encryptor was already finalized")
        ctx = self._context()
        self._done = True
        self._scratch = _Scratch()
        if self._gcm is not None:
            out = self._gcm.finalize()
            self._tag = self._gcm.tag
            return out
        pad = _BLOCK - self._length % _BLOCK
        return ctx.update(bytes((pad,)) * pad) + ctx.finalize()

    @property
    def tag(self) -> bytes:
        """The 16-byte GCM authentication tag (the AuthEnvelopedData ``mac``), after
        :meth:`finalize`."""
        if not self.cipher.aead:
            raise UsageError(f"{self.cipher.name} has no authentication tag")
        if self._tag is None:
            raise UsageError("the authentication tag is known only after finalize()")
        return self._tag


def _read_tlv(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int, int]:
    try:
        return F.tlv(buf, pos, end)
    except F.Unusual:
        raise AlgorithmError(f"the {what} cannot be read") from None


def _cbc_iv(cipher: ContentCipher, params: bytes | None) -> bytes:
    what = f"{cipher.name} parameters"
    if not params:
        raise AlgorithmError(f"the {what} are missing (the IV is needed)")
    tag, cs, ce = _read_tlv(params, 0, len(params), what)
    if tag != 0x04 or ce != len(params) or ce - cs != _BLOCK:
        raise AlgorithmError(f"the {what} must be a 16-byte IV (RFC 3565)")
    return params[cs:ce]


def _gcm_params(cipher: ContentCipher, params: bytes | None) -> tuple[bytes, int]:
    if (
        params is not None
        and len(params) == 19
        and params[:4] == b"\x30\x11\x04\x0c"
        and params[16:] == b"\x02\x01\x10"
    ):
        # the usual DER: a 12-byte nonce and a 16-byte tag, as mailseal and OpenSSL write it
        return params[4:16], 16
    what = f"{cipher.name} parameters"
    if not params:
        raise AlgorithmError(f"the {what} are missing (the nonce is needed)")
    tag, cs, ce = _read_tlv(params, 0, len(params), what)
    if tag != 0x30 or ce != len(params):
        raise AlgorithmError(f"the {what} are not a GCMParameters SEQUENCE (RFC 5084 §3.2)")
    try:
        kids = F.children(params, cs, ce)
    except F.Unusual:
        raise AlgorithmError(f"the {what} cannot be read") from None
    if not kids or len(kids) > 2 or kids[0][0] != 0x04:
        raise AlgorithmError(f"the {what} must hold a nonce and a tag length (RFC 5084 §3.2)")
    nonce = params[kids[0][2] : kids[0][3]]
    if len(nonce) != _GCM_NONCE:
        raise AlgorithmError(
            f"the {cipher.name} nonce is {len(nonce)} bytes; only 12-byte nonces are supported"
        )
    icv = 12  # RFC 5084 §3.2: aes-ICVlen DEFAULT 12
    if len(kids) == 2:
        itag, ics, ice = kids[1][0], kids[1][2], kids[1][3]
        if itag != 0x02 or not 1 <= ice - ics <= 2:
            raise AlgorithmError(f"the {what} hold a malformed tag length")
        icv = int.from_bytes(params[ics:ice], "big", signed=True)
    if icv not in _GCM_TAG_RANGE:
        raise AlgorithmError(
            f"the {cipher.name} tag length is {icv} bytes; RFC 5084 allows 12 to 16"
        )
    return nonce, icv


def _cipher_for(algorithm_oid: str) -> ContentCipher:
    cipher = CIPHER_BY_OID.get(algorithm_oid)
    if cipher is not None:
        return cipher
    name = _UNSUPPORTED_NAMES.get(algorithm_oid)
    if name is not None:
        raise AlgorithmError(
            f"the message is encrypted with {name}, which mailseal does not decrypt "
            "(supported: AES-CBC and AES-GCM)"
        )
    raise AlgorithmError(
        f"unknown content encryption algorithm {algorithm_oid} (supported: AES-CBC and AES-GCM)"
    )


def _unpad(padded: bytes) -> bytes:
    """``padded`` without its PKCS#7 padding. cryptography checks the padding in constant time;
    any failure, like a wrong key, gives the one generic error."""
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptionError(_WRONG_KEY) from None


class ContentDecryptor:
    """Decrypt content in pieces: ``update`` as often as needed, then ``finalize`` once.

    For CBC the last block is held back until :meth:`finalize`, which removes and checks the
    padding. For GCM, :meth:`update` returns plaintext that is **not yet authenticated**: a
    caller must not release it before :meth:`finalize` has verified the tag.
    """

    __slots__ = (
        "_aad",
        "_ctx",
        "_done",
        "_gcm",
        "_held",
        "_iv",
        "_key",
        "_scratch",
        "_tag_length",
        "cipher",
    )

    def __init__(
        self,
        algorithm_oid: str,
        params_der: bytes | None,
        key: bytes,
        *,
        aad: bytes | None = None,
    ) -> None:
        cipher = _cipher_for(algorithm_oid)
        self.cipher = cipher
        self._held = b""
        self._scratch: _Scratch | None = None
        self._done = False
        if cipher.aead:
            self._iv, self._tag_length = _gcm_params(cipher, params_der)
        else:
            if aad is not None:
                raise UsageError(f"{cipher.name} cannot authenticate additional data")
            self._iv = _cbc_iv(cipher, params_der)
            self._tag_length = 0
        if len(key) != cipher.key_size:
            raise DecryptionError(
                f"the message cannot be decrypted: the content-encryption key is {len(key)} "
                f"bytes, {cipher.name} needs {cipher.key_size} (wrong key or corrupted message)"
            )
        self._key = key
        self._aad = aad or None
        # the cipher context is made when content is streamed; open() does without one
        self._ctx: CipherContext | None = None
        self._gcm: AEADDecryptionContext | None = None

    def _context(self) -> CipherContext:
        ctx: CipherContext
        if self.cipher.aead:
            mode = modes.GCM(self._iv, min_tag_length=self._tag_length)
            gcm = Cipher(_aes(self._key), mode).decryptor()
            if self._aad:
                gcm.authenticate_additional_data(self._aad)
            self._gcm = ctx = gcm
        else:
            ctx = Cipher(_aes(self._key), modes.CBC(self._iv)).decryptor()
        self._ctx = ctx
        return ctx

    @property
    def tag_length(self) -> int:
        """The GCM tag length the parameters announce (12..16); 0 for CBC."""
        return self._tag_length

    def open(self, ciphertext: bytes, tag: bytes | None = None) -> bytes:
        """Decrypt the whole content in one call (instead of ``update`` and ``finalize``; for
        content held in memory). The checks and errors are those of :meth:`finalize`; GCM
        plaintext is returned only once the tag has verified."""
        if self._done or self._ctx is not None:
            raise UsageError("open() decrypts the whole content of a fresh decryptor")
        if self.cipher.aead:
            if tag is not None and len(tag) == self._tag_length == _GCM_TAG:
                self._done = True
                try:
                    return AESGCM(self._key).decrypt(self._iv, ciphertext + tag, self._aad)
                except InvalidTag:
                    raise DecryptionError(_TAMPERED) from None
            return self.update(ciphertext) + self.finalize(tag)
        if tag is not None:
            raise UsageError(f"{self.cipher.name} has no authentication tag")
        if not ciphertext:
            raise MalformedCMS(_EMPTY_OR_PARTIAL)
        if len(ciphertext) % _BLOCK:
            raise MalformedCMS(_PARTIAL_BLOCK)
        self._done = True
        ctx = Cipher(_aes(self._key), modes.CBC(self._iv)).decryptor()
        return _unpad(ctx.update(ciphertext) + ctx.finalize())

    def update(self, data: bytes) -> bytes:
        """Decrypt the next piece of ciphertext."""
        if self._scratch is None:
            self._scratch = _Scratch()
        view = self._scratch.view(len(data))
        return bytes(view[: self.update_into(data, view)])

    def update_into(self, data: bytes, out: bytearray | memoryview) -> int:
        """Like :meth:`update`, writing into ``out`` (at least ``len(data) + UPDATE_INTO_SLACK``
        bytes); returns how many bytes were written."""
        if self._done:
            raise UsageError("the content decryptor was already finalized")
        ctx = self._ctx if self._ctx is not None else self._context()
        if self._gcm is not None:
            try:
                return self._gcm.update_into(data, out)
            except ValueError as exc:  # more than 2^36 - 32 bytes under one key
                raise LimitExceeded(
                    f"too much content for one {self.cipher.name} key ({exc})"
                ) from None
        # CBC: keep the last (possibly padding) block until finalize
        view = memoryview(out)
        h = len(self._held)
        view[:h] = self._held
        total = h + ctx.update_into(data, view[h:])
        if total == 0:
            return 0
        self._held = bytes(view[total - _BLOCK : total])
        return total - _BLOCK

    def finalize(self, tag: bytes | None = None) -> bytes:
        """The last plaintext bytes, after checking the CBC padding or the GCM ``tag``.

        Raises :class:`~mailseal.errors.DecryptionError` when the key is wrong or the ciphertext
        (or tag) was modified.
        """
        if self._done:
            raise UsageError("the content decryptor was already finalized")
        ctx = self._ctx if self._ctx is not None else self._context()
        self._done = True
        self._scratch = None
        if self._gcm is not None:
            return self._finalize_gcm(self._gcm, tag)
        if tag is not None:
            raise UsageError(f"{self.cipher.name} has no authentication tag")
        try:
            rest = ctx.finalize()
        except ValueError:
            raise MalformedCMS(_PARTIAL_BLOCK) from None
        last = self._held + rest
        if len(last) != _BLOCK:
            raise MalformedCMS(_EMPTY_OR_PARTIAL)
        return _unpad(last)

    def _finalize_gcm(self, gcm: AEADDecryptionContext, tag: bytes | None) -> bytes:
        if tag is None:
            raise UsageError(f"{self.cipher.name} needs the authentication tag to finish")
        if len(tag) != self._tag_length:
            raise MalformedCMS(
                f"the authentication tag is {len(tag)} bytes; "
                f"the algorithm parameters say {self._tag_length}"
            )
        try:
            return gcm.finalize_with_tag(tag)
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None
        except AlreadyFinalized:  # pragma: no cover - guarded by _done
            raise UsageError("the content decryptor was already finalized") from None
