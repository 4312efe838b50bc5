"""IRCv3 capability names used by both the server and the clients."""

from __future__ import annotations

ECHO_MESSAGE = "echo-message"
MULTI_PREFIX = "multi-prefix"
USERHOST_IN_NAMES = "userhost-in-names"
#: chatcli's own: do not join the default room on registration. ``chat send`` asks for it,
#: so that a script's direct message does not show a join and a quit to everyone there.
NO_AUTOJOIN = "chatcli.local/no-autojoin"
SERVER_TIME = "server-time"
MESSAGE_TAGS = "message-tags"
EXTENDED_JOIN = "extended-join"
LABELED_RESPONSE = "labeled-response"
BATCH = "batch"
CAP_NOTIFY = "cap-notify"
AWAY_NOTIFY = "away-notify"
INVITE_NOTIFY = "invite-notify"
SETNAME = "setname"
