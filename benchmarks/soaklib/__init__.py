"""The soak's parts (``soak.py`` runs them): the server under soak (``server``), one IRC
connection (``irc``), the agents and their loop (``agents``), what they do (``actions``),
what they make of the server's lines (``replies``) and the ledger of what must arrive
(``ledger``).

Imports go one way: ``irc`` and ``ledger`` import nothing here; ``agents`` imports them;
``actions`` imports ``agents``; ``replies`` imports ``actions``; ``soak.py`` hands the
actions and the handlers to the :class:`~soaklib.agents.Harness`. ``server`` uses
``harness`` (shared with the benchmark), which imports nothing of this package.
"""
