"""mailseal.api."""
