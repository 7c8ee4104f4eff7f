"""``python -m mailseal``."""

from __future__ import annotations

from mailseal.cli.main import main

if __name__ == "__main__":
    main()
