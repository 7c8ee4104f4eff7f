"""mailseal.web."""
