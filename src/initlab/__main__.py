"""``python -m initlab``: the ``initlab`` command."""

from initlab._entry import main

main()
