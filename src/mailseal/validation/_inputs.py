"""Reading CRLs and OCSP responses given as bytes (DER or PEM), with asn1crypto only."""

from __future__ import annotations

from asn1crypto import crl as a_crl
from asn1crypto import ocsp as a_ocsp
from asn1crypto import pem as a_pem

__all__ = ["load_crl", "load_ocsp"]


def _unarmor(data: bytes) -> list[bytes]:
    if a_pem.detect(data):
        return [der for _, _, der in a_pem.unarmor(data, multiple=True)]
    return [data]


def load_crl(data: bytes) -> list[a_crl.CertificateList]:
    """CRLs from DER or PEM bytes (several PEM blocks allowed); ValueError when unreadable."""
    out = []
    try:
        for der in _unarmor(data):
            c = a_crl.CertificateList.load(der)
            tbs = c["tbs_cert_list"]
            _ = (tbs["issuer"].native, tbs["this_update"].native, tbs["next_update"].native)
            _ = c["signature"].native
            out.append(c)
    except ValueError:
        raise
    except Exception as exc:  # asn1crypto raises TypeError, KeyError, ... on garbage
        raise ValueError(str(exc) or type(exc).__name__) from None
    if not out:
        raise ValueError("no CRL found")
    return out


def load_ocsp(data: bytes) -> list[a_ocsp.OCSPResponse]:
    """OCSP responses from DER or PEM bytes; ValueError when unreadable or not successful."""
    out = []
    try:
        for der in _unarmor(data):
            r = a_ocsp.OCSPResponse.load(der)
            status = r["response_status"].native
            if status != "successful":
                raise ValueError(f"the OCSP response status is {status!r}")
            _ = r.basic_ocsp_response["tbs_response_data"]["responses"].native
            out.append(r)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if not out:
        raise ValueError("no OCSP response found")
    return out
