"""``python -m chatcli`` runs the ``chat`` command."""

from chatcli.entry import main

main()
