"""The ``initlab`` console script.

Ctrl-C at any moment exits with code 130, without a traceback: also while the command's
imports load (torch alone takes a second or more), before any command could catch it.
Nothing heavy is imported here, outside the ``try``.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``initlab`` command; Ctrl-C exits 130 quietly."""
    try:
        from initlab.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.exit(130)
