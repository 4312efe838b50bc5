"""Errors raised by command handlers and the shared state: each one is an IRC reply.

A handler raises one of these instead of building the error reply itself; the dispatcher
sends ``<numeric> <client> <params...> :<text>`` to the client and the connection goes on.
"""

from __future__ import annotations

from chatcli.protocol import numerics as n


class IRCError(Exception):
    """An error reply. Subclasses fix the numeric and the default text."""

    numeric = n.ERR_UNKNOWNCOMMAND
    text = "Error"

    def __init__(self, *params: str, text: str | None = None) -> None:
        super().__init__(" ".join(params))
        self.params = params
        if text is not None:
            self.text = text


def _error(name: str, numeric: str, text: str) -> type[IRCError]:
    return type(name, (IRCError,), {"numeric": numeric, "text": text})


NoSuchNick = _error("NoSuchNick", n.ERR_NOSUCHNICK, "No such nick/channel")
NoSuchChannel = _error("NoSuchChannel", n.ERR_NOSUCHCHANNEL, "No such channel")
CannotSendToChan = _error("CannotSendToChan", n.ERR_CANNOTSENDTOCHAN, "Cannot send to channel")
TooManyChannels = _error(
    "TooManyChannels", n.ERR_TOOMANYCHANNELS, "You have joined too many channels"
)
TooManyTargets = _error("TooManyTargets", n.ERR_TOOMANYTARGETS, "Too many targets")
NoRecipient = _error("NoRecipient", n.ERR_NORECIPIENT, "No recipient given")
NoTextToSend = _error("NoTextToSend", n.ERR_NOTEXTTOSEND, "No text to send")
UnknownCommand = _error("UnknownCommand", n.ERR_UNKNOWNCOMMAND, "Unknown command")
NoNicknameGiven = _error("NoNicknameGiven", n.ERR_NONICKNAMEGIVEN, "No nickname given")
ErroneousNickname = _error("ErroneousNickname", n.ERR_ERRONEUSNICKNAME, "Erroneous nickname")
NicknameInUse = _error("NicknameInUse", n.ERR_NICKNAMEINUSE, "Nickname is already in use")
UserNotInChannel = _error("UserNotInChannel", n.ERR_USERNOTINCHANNEL, "They aren't on that channel")
NotOnChannel = _error("NotOnChannel", n.ERR_NOTONCHANNEL, "You're not on that channel")
UserOnChannel = _error("UserOnChannel", n.ERR_USERONCHANNEL, "is already on channel")
NotRegistered = _error("NotRegistered", n.ERR_NOTREGISTERED, "You have not registered")
NeedMoreParams = _error("NeedMoreParams", n.ERR_NEEDMOREPARAMS, "Not enough parameters")
AlreadyRegistered = _error("AlreadyRegistered", n.ERR_ALREADYREGISTERED, "You may not reregister")
PasswdMismatch = _error("PasswdMismatch", n.ERR_PASSWDMISMATCH, "Password incorrect")
ChannelIsFull = _error("ChannelIsFull", n.ERR_CHANNELISFULL, "Cannot join channel (+l)")
UnknownMode = _error("UnknownMode", n.ERR_UNKNOWNMODE, "is an unknown mode char to me")
InviteOnlyChan = _error("InviteOnlyChan", n.ERR_INVITEONLYCHAN, "Cannot join channel (+i)")
BannedFromChan = _error("BannedFromChan", n.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)")
BadChannelKey = _error("BadChannelKey", n.ERR_BADCHANNELKEY, "Cannot join channel (+k)")
BadChanMask = _error("BadChanMask", n.ERR_BADCHANMASK, "Bad Channel Mask")
ChanOPrivsNeeded = _error("ChanOPrivsNeeded", n.ERR_CHANOPRIVSNEEDED, "You're not channel operator")
UModeUnknownFlag = _error("UModeUnknownFlag", n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
UsersDontMatch = _error("UsersDontMatch", n.ERR_USERSDONTMATCH, "Cant change mode for other users")
InvalidCapCmd = _error("InvalidCapCmd", n.ERR_INVALIDCAPCMD, "Invalid CAP command")
HelpNotFound = _error("HelpNotFound", n.ERR_HELPNOTFOUND, "No help available on this topic")
NoOrigin = _error("NoOrigin", n.ERR_NOORIGIN, "No origin specified")
InvalidModeParam = _error("InvalidModeParam", n.ERR_INVALIDMODEPARAM, "Invalid mode parameter")


class Fatal(Exception):
    """End this connection: ``ERROR :<reason>`` is sent and the socket closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NoSuchServer = _error("NoSuchServer", n.ERR_NOSUCHSERVER, "No such server")
BanListFull = _error("BanListFull", n.ERR_BANLISTFULL, "Channel list is full")
#: ERR_UNKNOWNERROR with the command as its parameter and the reason as its text.
UnknownError = _error("UnknownError", n.ERR_UNKNOWNERROR, "Unknown error")
PasswdMismatch = _error("PasswdMismatch", n.ERR_PASSWDMISMATCH, "Password incorrect")
NoPrivileges = _error(
    "NoPrivileges", n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
)
NoOperHost = _error("NoOperHost", n.ERR_NOOPERHOST, "No O-lines for your host")


class BackboneUnavailable(Exception):
    """The other servers of a cluster cannot be reached now: what needed them (a nick's
    claim) was not done. The client is told to try again later."""
