"""mailseal.pki."""
