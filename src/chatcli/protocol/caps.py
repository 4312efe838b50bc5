"""IRCv3 capability names, and the client-only tags, used by both the server and the
clients."""

from __future__ import annotations

ECHO_MESSAGE = "echo-message"
MULTI_PREFIX = "multi-prefix"
USERHOST_IN_NAMES = "userhost-in-names"
#: chatcli's own: join the server's default room on registration. ``chat join`` asks for it;
#: other IRC clients join rooms themselves, as on any IRC server (the MOTD names the room).
AUTOJOIN = "chatcli.local/autojoin"
#: chatcli's own: a short-lived client (a script: ``chat send``, ``chat tail``) whose joins,
#: parts and quit are not announced to the rooms; it still shows in NAMES and WHO, and
#: everything else (keys, bans, invite-only, moderation) applies to it as to anyone.
QUIET = "chatcli.local/quiet"
SERVER_TIME = "server-time"
MESSAGE_TAGS = "message-tags"
EXTENDED_JOIN = "extended-join"
LABELED_RESPONSE = "labeled-response"
BATCH = "batch"
CAP_NOTIFY = "cap-notify"
AWAY_NOTIFY = "away-notify"
INVITE_NOTIFY = "invite-notify"
SETNAME = "setname"
#: IRCv3 extended-monitor: who MONITORs a nick is told of its AWAY, ACCOUNT and SETNAME
#: (with those caps) as if sharing a room with it.
EXTENDED_MONITOR = "extended-monitor"
SASL = "sasl"
ACCOUNT_TAG = "account-tag"
ACCOUNT_NOTIFY = "account-notify"
ACCOUNT_REGISTRATION = "draft/account-registration"
CHATHISTORY = "draft/chathistory"
#: IRCv3 draft/event-playback: CHATHISTORY gives topic changes and kept TAGMSGs too.
EVENT_PLAYBACK = "draft/event-playback"
#: IRCv3 draft/message-redaction: REDACT, to take back a message.
REDACTION = "draft/message-redaction"
#: IRCv3 draft/read-marker: MARKREAD, what an account has read, shared by its clients.
READ_MARKER = "draft/read-marker"
#: IRCv3 draft/channel-rename: RENAME, a room's new name.
CHANNEL_RENAME = "draft/channel-rename"
#: IRCv3 draft/metadata-2: METADATA, keys and values on users and rooms (display-name,
#: avatar, color, status...), and notifications of their changes to subscribers.
METADATA = "draft/metadata-2"
#: IRCv3 draft/metadata-notify-2: with draft/metadata-2, a MONITORed user's keys too.
METADATA_NOTIFY = "draft/metadata-notify-2"
#: IRCv3 draft/multiline: a message of several lines, sent and received as one batch.
MULTILINE = "draft/multiline"

# -- client-only tags (IRCv3 client tags: relayed by the server, read by the clients) --------

#: The msgid a message answers (a reply), or a reaction is to.
REPLY = "+draft/reply"
#: A reaction (on a TAGMSG, with REPLY), and one taken back.
REACT = "+draft/react"
UNREACT = "+draft/unreact"
