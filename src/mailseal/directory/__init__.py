"""mailseal.directory."""
