"""mailseal.validation."""
