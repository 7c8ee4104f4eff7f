"""mailseal.mime."""
