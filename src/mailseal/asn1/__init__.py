"""mailseal.asn1."""
