"""mailseal.cms."""
