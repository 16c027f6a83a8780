"""``python -m generator``: the same as the ``genimg`` command."""

from .cli import main

main()
