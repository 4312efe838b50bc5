"""``python -m chatcli`` runs the ``chat`` command."""

from chatcli.cli import main

main()
