"""mailseal.cli."""
