"""mailseal.keys."""
