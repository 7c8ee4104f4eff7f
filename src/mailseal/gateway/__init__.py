"""mailseal.gateway."""
