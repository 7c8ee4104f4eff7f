"""mailseal.store."""
