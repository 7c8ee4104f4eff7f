"""mailseal.lifecycle."""
