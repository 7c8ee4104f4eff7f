"""mailseal.escrow."""
