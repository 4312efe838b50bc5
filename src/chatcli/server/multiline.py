"""IRCv3 draft/multiline: the limits of a multiline message, and the one a client is
sending.

A client with the capability (and ``batch``) opens a batch, sends its lines in it, and
closes it; the server delivers the message once it is closed (see
:mod:`chatcli.server.handlers.messaging`)::

    BATCH +<ref> draft/multiline <target>
    @batch=<ref> PRIVMSG <target> :<line>
    @batch=<ref>;draft/multiline-concat PRIVMSG <target> :<the same line, continued>
    BATCH -<ref>

A connection has at most one batch open (:class:`Multiline`, the connection's
``multiline``): it holds at most :data:`MAX_BYTES` of text in :data:`MAX_LINES` lines, and
goes with the connection if it closes first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The limits of one multiline message, as the capability's value announces them
#: (``draft/multiline=max-bytes=4096,max-lines=100``). MAX_BYTES counts the lines' texts in
#: UTF-8, and one byte for each line feed that joins two lines (none before a line that
#: continues the one before it); MAX_LINES counts the lines. 4096 bytes is about eight full
#: IRC lines of text; 100 lines lets a short paste of code through. What the recipients get
#: is bounded by both: at most 100 lines of at most 512 bytes each, with their tags.
MAX_BYTES = 4096
MAX_LINES = 100
#: The capability's value (CAP LS 302).
CAP_VALUE = f"max-bytes={MAX_BYTES},max-lines={MAX_LINES}"
#: The longest reference a client may give its batch.
MAX_REF_CHARS = 64


@dataclass(slots=True)
class Multiline:
    """A multiline message being sent: its batch's reference and target, what its opening
    ``BATCH`` carried (client-only tags, a label), and its lines so far.

    A batch that failed (a line past a limit, a wrong target...) stays as ``failed`` until
    it is closed, so that the rest of its lines and its end are dropped without a word
    each (the client was told once)."""

    ref: str
    target: str
    client_tags: str = ""
    label: str | None = None
    command: str | None = None  #: PRIVMSG or NOTICE, as the first line says
    texts: list[str] = field(default_factory=list)
    concat: set[int] = field(default_factory=set)  #: lines that continue the one before
    size: int = 0  #: bytes counted against MAX_BYTES
    failed: bool = False

    def has_text(self) -> bool:
        """Whether a line is not blank (a message of blank lines only is invalid)."""
        return any(self.texts)
