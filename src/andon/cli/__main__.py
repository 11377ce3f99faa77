"""``python -m andon.cli``."""

from __future__ import annotations

from andon.cli import main

if __name__ == "__main__":
    main()
