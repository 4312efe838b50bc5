// The browser client: IRC over a WebSocket back to the server that served this page.
//
// Everything that comes from the network (messages, nicks, topics, room names) reaches the
// page as text only: through textContent and DOM nodes, never as markup.

import {
  actionText,
  buildLine,
  buildTagged,
  capTokens,
  duration,
  fold,
  fullMask,
  isChannel,
  maskMatches,
  mentions,
  modeChanges,
  parseLine,
  plainText,
  safeColour,
  safeDisplayName,
  safeImageUrl,
  saslPlain,
  setCasemapping,
  splitBytes,
  utf8Length,
} from "./irc.js";

// The capabilities this client can use, when the server offers them.
const WANTED_CAPS = [
  "server-time",
  "echo-message",
  "message-tags",
  "batch",
  "labeled-response",
  "draft/chathistory",
  "away-notify",
  "account-tag",
  "multi-prefix",
  "chatcli.local/autojoin",
  "draft/multiline",
  "draft/message-redaction",
  "draft/read-marker",
  "draft/metadata-2",
  "draft/metadata-notify-2",
  "draft/event-playback", // (reactions and topic changes in the history too)
  "draft/channel-rename", // (a room renamed keeps its conversation: RENAME, not PART and JOIN)
];
const HISTORY_PAGE = 50; // lines asked for at a time (CHATHISTORY limit)
const MAX_LINES = 2000; // kept per conversation; older ones are dropped from the page
const BACKOFF_FIRST = 1000; // ms before the first reconnection, doubled up to BACKOFF_MAX
const BACKOFF_MAX = 30000;
const HISTORY_SHOWN = 20; // lines /history loads without a number
const IGNORES_KEY = "chatcli.ignores"; // where the ignore list is kept (localStorage)
const MULTILINE_PIECE = 350; // bytes of text in one line of a multiline batch (at most)
const MULTILINE_BATCH_LINES = 500; // lines of one received multiline message kept (at most)
const MAX_OPEN_BATCHES = 100; // batches open at once (more are not followed)
const PASTE_PACE = 125; // ms between the lines of a paste sent one message each
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"]; // offered by a message's menu
const MAX_REACTION = 32; // characters of a reaction (a longer one is not shown)
const MAX_REACTION_KINDS = 20; // different reactions shown under one message
const MAX_REACTORS = 500; // people counted for one reaction of one message
const READ_PACE = 1000; // ms between two MARKREADs of a conversation (at least)
const MAX_PENDING = 1000; // messages not shown yet whose reactions are kept, per conversation
const META_KEYS = ["display-name", "color", "avatar", "status"]; // subscribed to
const MAX_META_PEOPLE = 5000; // people whose metadata is kept
const MAX_META_VALUE = 2048; // characters of one value kept
const MAX_ROOM_NAME = 200; // characters of a room's new name from RENAME (a longer one: ignored)

const $ = (id) => document.getElementById(id);

// -- state -----------------------------------------------------------------------------------

const state = {
  nick: "",
  account: "", // the alias signed in with: the account's name, whatever the nick becomes
  password: "",
  create: false,
  ws: null,
  binary: false, // the server chose binary.ircv3.net: send UTF-8 bytes, not text frames
  registered: false,
  signedIn: false, // the user got in at least once: a lost connection is retried
  offered: new Map(), // capability -> value, from CAP LS
  caps: new Set(), // acknowledged
  chantypes: "#&",
  convs: new Map(), // folded name -> conversation (see newConv)
  selected: null, // folded name of the conversation shown
  batches: new Map(), // open batch reference -> {type, target, lines}
  backoff: BACKOFF_FIRST,
  retryTimer: null,
  away: false,
  server: "", // the server's name, the source of its own lines
  burstDone: false, // the welcome burst is over: other replies were asked for
  newPassword: "", // of an account being registered, until the server says it is
  lastDirect: "", // who sent the last direct message (/r)
  ignores: loadIgnores(), // masks whose messages are not shown
  // From the server's ISUPPORT: member ranks, which modes take a parameter, how many a line.
  ranks: { modes: "ov", symbols: "@+" },
  takes: { always: "beIk", whenSet: "l" }, // (and the ranks' modes)
  maxModes: 3,
  historyMax: HISTORY_PAGE,
  // Answers being gathered for the user, shown once complete (see REPLIES).
  whois: new Map(), // folded nick -> {nick, codes: {code: params}, channels: []}
  namesAsked: new Map(), // folded room -> the members listed so far, for /users
  gathered: new Map(), // kind ("who", "list", "367"...) -> lines so far
  awayTold: new Map(), // folded nick -> the away message shown last
  quietUntil: 0, // (performance.now()) no fetching on scroll before then: /history's lines
  loggedIn: false, // signed in to an account (read markers are an account's)
  replyTo: null, // the line the next message answers: {conv, line}
  meta: new Map(), // folded nick -> {display-name, color, avatar, status}, checked
  metaAsked: new Set(), // keys of our own that METADATA SET was sent for
  menu: null, // the message menu open: {line, node, button}
  metaSynced: false, // the rooms joined before subscribing were asked for their metadata
  pasteQueue: [], // lines of a paste waiting to go, one message each: [target, text]
  pasteTimer: null,
  nextBatch: 1, // the reference of the next multiline batch sent
};

/** A room or a direct conversation, and everything the page shows of it. */
function newConv(name) {
  return {
    name,
    isRoom: isChannel(name, state.chantypes),
    // {msgid, time, nick, text, kind, own, reply, redacted, reactions}, oldest first
    lines: [],
    msgids: new Map(), // msgid -> its line: history and live lines never show twice
    unread: 0,
    mentions: 0,
    topic: "",
    members: new Map(), // folded nick -> {nick, prefix, away}
    namesDone: true, // the next NAMES reply starts a fresh member list
    joined: false,
    loading: false, // a CHATHISTORY request is out
    complete: false, // no earlier history left to fetch
    cleared: false, // /clear: earlier lines come back only on /history
    lastSeen: null, // the msgid of the last line cleared away (to catch up from)
    reveal: false, // /history asked: show the earlier lines when they come
    pending: new Map(), // msgid of a message not shown yet -> the reactions to it (TAGMSG)
    readAt: null, // the account's read marker (an ISO time), as the server last said
    readSent: null, // the time last sent in a MARKREAD (not sent again)
    newFrom: null, // lines after this time are below the "unread" divider
  };
}

function conv(name, create = true) {
  const key = fold(name);
  let found = state.convs.get(key);
  if (!found && create) {
    found = newConv(name);
    state.convs.set(key, found);
    if (!found.isRoom && connected()) {
      watch([found.name], "+");
      askMarker(found);
    }
  }
  return found;
}

/** The people of direct conversations, watched (MONITOR) so that their display names,
 *  colours and avatars come without sharing a room (draft/metadata-notify-2). */
function watch(nicks, how) {
  if (!has("draft/metadata-2") || !has("draft/metadata-notify-2")) return;
  for (let i = 0; i < nicks.length; i += 20) send("MONITOR", how, nicks.slice(i, i + 20).join(","));
}

const has = (cap) => state.caps.has(cap);

// -- the connection ------------------------------------------------------------------------------

/** The WebSocket URL of this page's own server: ws: or wss: to match http: or https:. */
function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/`;
}

function connect() {
  clearTimeout(state.retryTimer);
  state.registered = false;
  state.burstDone = false;
  state.caps = new Set();
  state.offered = new Map();
  state.batches = new Map();
  state.whois = new Map();
  state.namesAsked = new Map();
  state.gathered = new Map();
  state.loggedIn = false;
  state.metaSynced = false;
  setStatus("Connecting…");
  const ws = new WebSocket(socketUrl(), ["text.ircv3.net", "binary.ircv3.net"]);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.addEventListener("open", () => {
    state.binary = ws.protocol === "binary.ircv3.net";
    send("CAP", "LS", "302");
    send("NICK", state.nick);
    send("USER", state.nick, "0", "*", state.nick);
  });
  ws.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
    for (const line of text.split(/\r?\n/)) if (line) receive(parseLine(line));
  });
  ws.addEventListener("close", () => {
    if (state.ws !== ws) return; // an old socket, replaced already
    state.ws = null;
    forgetConnection();
    if (state.signedIn) scheduleReconnect();
    else showSignIn("Could not connect to the server.");
  });
}

/** The connection is gone: nothing asked on it will be answered, no room is joined. */
function forgetConnection() {
  for (const c of state.convs.values()) {
    c.loading = false;
    c.joined = false;
  }
}

/** Drop the connection (as /reconnect and /quit do): its closing is no lost connection.
 *  ``then`` runs once it is closed, or after a while if it will not close. */
function hangUp(then = () => {}) {
  const ws = state.ws;
  state.ws = null;
  forgetConnection();
  if (!ws) {
    then();
    return;
  }
  let done = false;
  const once = () => {
    if (!done) then();
    done = true;
  };
  ws.addEventListener("close", once);
  state.retryTimer = setTimeout(once, 3000);
  ws.close();
}

/** Try again after a while, longer each time (with jitter, so that many clients do not
 *  all come back at the same moment after a restart). */
function scheduleReconnect() {
  const wait = state.backoff * (0.75 + Math.random() * 0.5);
  state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX);
  setStatus(`Disconnected. Reconnecting in ${Math.ceil(wait / 1000)} s…`, true);
  state.retryTimer = setTimeout(connect, wait);
}

function send(command, ...params) {
  return sendLine(buildLine(command, ...params));
}

/** A whole line as it is (/quote), but for line breaks and NULs: one line, never two. */
function sendLine(line) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  const one = line.replace(/[\r\n\0]/g, " ");
  ws.send(state.binary ? new TextEncoder().encode(one) : one);
  return true;
}

const connected = () => state.registered && state.ws?.readyState === WebSocket.OPEN;

// -- the answers to the user's commands --------------------------------------------------------
//
// Shown as notes in the conversation shown, each once and compactly: the parts of an answer
// (a WHOIS, a WHO, a LIST, a ban list) are gathered until its end, then shown together.

const WHOIS_PARTS = "276 311 313 317 319 320 330 335 338 378 379 671".split(" ");
// A list's entry -> its end, its heading, what is said when it is empty.
const MASK_LISTS = {
  367: ["368", "Banned from", "No bans in"],
  346: ["347", "Invited to", "No invitations in"],
  348: ["349", "Exempt from bans in", "No exemptions in"],
};

const REPLIES = {
  ...Object.fromEntries(WHOIS_PARTS.map((code) => [code, onWhoisPart])),
  301: onAwayReply,
  318: (m) => showWhois(m.params[1] || ""),
  352: (m) => gather("who", whoLine(m.params)),
  354: (m) => gather("who", m.params.slice(1).join(" ")),
  315: (m) => showGathered("who", `Who ${m.params[1]}`, `No one matches ${m.params[1]}.`),
  322: (m) => gather("list", listLine(m.params)),
  323: () => showGathered("list", "Rooms", "No rooms to list."),
  ...Object.fromEntries(
    Object.entries(MASK_LISTS).flatMap(([item, [end, heading, none]]) => [
      [item, (m) => gather(item, maskLine(m.params))],
      [end, (m) => showGathered(item, `${heading} ${m.params[1]}`, `${none} ${m.params[1]}.`)],
    ]),
  ),
  324: (m) => note(null, `Modes of ${m.params[1]}: ${m.params.slice(2).join(" ")}`),
  329: (m) => note(null, `${m.params[1]} was created ${dateOf(m.params[2])}.`),
  341: (m) => note(null, `Invited ${m.params[1]} to ${m.params[2]}.`),
  221: (m) => note(null, `Your modes: ${m.params[1] || "none"}`),
};

function whoisOf(nick) {
  const key = fold(nick);
  if (!state.whois.has(key)) state.whois.set(key, { nick, codes: {}, channels: [] });
  return state.whois.get(key);
}

function onWhoisPart(m) {
  const got = whoisOf(m.params[1] || "");
  if (m.command === "319") got.channels.push(...(m.params[2] || "").split(" ").filter(Boolean));
  else got.codes[m.command] = m.params;
}

/** Someone is away: part of a WHOIS, or the answer to a message sent them (told once). */
function onAwayReply(m) {
  const [, nick = "", text = ""] = m.params;
  if (state.whois.has(fold(nick))) {
    whoisOf(nick).codes["301"] = m.params;
  } else if (state.awayTold.get(fold(nick)) !== text) {
    state.awayTold.set(fold(nick), text);
    note(conv(nick, false) ? nick : null, `${nick} is away: ${text}`, "event");
  }
}

function showWhois(nick) {
  const got = state.whois.get(fold(nick));
  state.whois.delete(fold(nick));
  if (got) note(null, whoisText(got));
}

/** "alice is ~alice@host (Alice) · on #a #b · idle 3m · logged in as alice" */
function whoisText({ nick, codes, channels }) {
  const user = codes["311"];
  const parts = [user ? `${nick} is ${user[2]}@${user[3]} (${user.at(-1)})` : nick];
  if (channels.length) parts.push(`on ${channels.join(" ")}`);
  if (codes["317"]) parts.push(`idle ${duration(Number(codes["317"][2]))}`);
  if (codes["330"]) parts.push(`logged in as ${codes["330"][2]}`);
  if (codes["301"]) parts.push(`away: ${codes["301"].at(-1)}`);
  const said = { 313: "a server operator", 335: "a bot", 671: "connected securely" };
  for (const [code, params] of Object.entries(codes)) {
    if (code in said) parts.push(said[code]);
    else if (!["301", "311", "317", "330"].includes(code)) parts.push(params.slice(2).join(" "));
  }
  return parts.join(" · ");
}

function gather(kind, line) {
  if (!state.gathered.has(kind)) state.gathered.set(kind, []);
  state.gathered.get(kind).push(line);
}

function showGathered(kind, heading, none) {
  const lines = state.gathered.get(kind) || [];
  state.gathered.delete(kind);
  if (!lines.length) {
    note(null, none);
    return;
  }
  note(null, `${heading} (${lines.length}):`);
  note(null, lines, "detail");
}

/** A WHO reply: "bob (~bob@host) in #lobby · away — Bob's real name" */
function whoLine([, room, user, host, , nick, flags = "", last = ""]) {
  const real = last.replace(/^\d+ ?/, ""); // (after the hop count)
  return (
    `${nick} (${user}@${host})` +
    (room && room !== "*" ? ` in ${room}` : "") +
    (flags.startsWith("G") ? " · away" : "") +
    (flags.includes("*") ? " · server operator" : "") +
    (real ? ` — ${real}` : "")
  );
}

/** A LIST reply: "#lobby · 2 people · the topic" */
function listLine([, room, count = "0", topic = ""]) {
  const people = count === "1" ? "1 person" : `${count} people`;
  return `${room} · ${people}` + (topic ? ` · ${topic}` : "");
}

/** A ban (or invitation, or exemption) list's entry: "bob!*@* (by alice, 12/03/2025…)" */
function maskLine([, , mask, by, when]) {
  return mask + (by ? ` (by ${by}${when ? `, ${dateOf(when)}` : ""})` : "");
}

function dateOf(seconds) {
  const date = new Date(Number(seconds) * 1000);
  return Number.isNaN(date.getTime()) ? seconds : date.toLocaleString();
}

// -- what the server says -----------------------------------------------------------------------

const HANDLERS = {
  PING: (m) => send("PONG", ...m.params),
  CAP: onCap,
  AUTHENTICATE: (m) => {
    if (m.params[0] === "+") send("AUTHENTICATE", saslPlain(state.account, state.password));
  },
  903: () => {
    state.loggedIn = true;
    send("CAP", "END"); // logged in
  },
  904: (m) => failSignIn(m, "Wrong alias or password."),
  905: (m) => failSignIn(m, "Wrong alias or password."),
  906: () => send("CAP", "END"),
  "001": onWelcome,
  "005": onIsupport,
  433: onNickInUse,
  432: (m) => failSignIn(m, "That alias is not allowed here."),
  BATCH: onBatch,
  PRIVMSG: onMessage,
  NOTICE: onMessage,
  TAGMSG: onTagmsg,
  REDACT: onRedact,
  MARKREAD: onMarkread,
  METADATA: (m) => setMeta(m.params[0], m.params[1], m.params.length > 3 ? m.params[3] : null),
  761: (m) => onKeyValue(m.params[1], m.params[2], m.params.length > 4 ? m.params[4] : null),
  766: (m) => onKeyValue(m.params[1], m.params[2], null),
  770: onSubscribed,
  JOIN: onJoin,
  PART: (m) => onLeave(m.nick, m.params[0], "left"),
  KICK: onKick,
  QUIT: onQuit,
  NICK: onNick,
  RENAME: onRename,
  TOPIC: onTopic,
  332: (m) => setTopic(m.params[1], m.params[2] || ""),
  331: (m) => setTopic(m.params[1], ""),
  353: onNames,
  366: onNamesEnd,
  MODE: onMode,
  INVITE: (m) => note(null, `${m.nick} invites you to ${m.params[1]}: /join ${m.params[1]}`),
  AWAY: (m) => setAway(m.nick, m.params.length > 0),
  305: () => setOwnAway(false),
  306: () => setOwnAway(true),
  REGISTER: onRegistered,
  FAIL: (m) => onFail(m),
  ERROR: (m) => setStatus(plainText(m.params[0] || "Disconnected"), true),
  376: () => (state.burstDone = true), // the end of the message of the day
  422: () => (state.burstDone = true), // (or of its absence)
  ...REPLIES, // the answers to the user's commands (WHOIS, WHO, LIST...): see below
};

// Numerics no one need read: the rest, once the welcome is over, were asked for (/quote).
const UNSPOKEN = new Set(["312", "321", "333"]);

function receive(m) {
  const handler = HANDLERS[m.command];
  try {
    if (handler) handler(m);
    else if (/^[45]\d\d$/.test(m.command)) note(null, m.params.slice(1).join(" "), "error");
    else if (/^[23]\d\d$/.test(m.command) && state.burstDone && !UNSPOKEN.has(m.command)) {
      note(null, m.params.slice(1).join(" "), "server");
    }
  } catch (error) {
    console.error("could not handle", m, error); // one odd line must not stop the client
  }
}

function onCap(m) {
  const sub = (m.params[1] || "").toUpperCase();
  if (sub === "LS") {
    const more = m.params[2] === "*";
    for (const item of (m.params[more ? 3 : 2] || "").split(" ")) {
      if (!item) continue;
      const eq = item.indexOf("=");
      state.offered.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? "" : item.slice(eq + 1));
    }
    if (!more) requestCaps();
  } else if (sub === "ACK") {
    for (const cap of (m.params[2] || "").split(" ")) {
      if (cap.startsWith("-")) state.caps.delete(cap.slice(1));
      else if (cap) state.caps.add(cap);
    }
    if (state.password && !state.create && has("sasl")) send("AUTHENTICATE", "PLAIN");
    else send("CAP", "END");
  } else if (sub === "NAK") {
    send("CAP", "END");
  }
}

function requestCaps() {
  const wanted = WANTED_CAPS.filter((cap) => state.offered.has(cap));
  if (state.password && !state.create && state.offered.has("sasl")) wanted.push("sasl");
  if (wanted.length) send("CAP", "REQ", wanted.join(" "));
  else send("CAP", "END");
}

function failSignIn(m, message) {
  if (state.registered) {
    note(null, plainText(m.params.at(-1) || message), "error");
    return;
  }
  state.signedIn = false;
  const ws = state.ws;
  state.ws = null; // (so that its closing is not taken for a lost connection)
  ws?.close();
  showSignIn(message);
}

function onNickInUse(m) {
  if (state.registered) {
    note(null, plainText(m.params.at(-1) || "That alias is taken."), "error");
  } else if (state.signedIn) {
    // Back after a lost connection, and our old self has not timed out yet: take a
    // variant for now rather than stay out.
    state.nick = `${state.nick}_`;
    send("NICK", state.nick);
  } else {
    failSignIn(m, "That alias is in use; pick another.");
  }
}

function onWelcome(m) {
  state.nick = m.params[0];
  state.server = m.source;
  state.registered = true;
  state.signedIn = true;
  state.backoff = BACKOFF_FIRST;
  showChat();
  setStatus("");
  $("me").textContent = state.nick;
  if (state.create && state.password) registerAccount(state.password);
  if (has("draft/metadata-2")) send("METADATA", "*", "SUB", ...META_KEYS);
  fillProfile();
  // Back after a lost connection: into the same rooms, and what was missed in the
  // conversations (the rooms' comes when they are joined again).
  const rooms = [...state.convs.values()].filter((c) => c.isRoom).map((c) => c.name);
  if (rooms.length) send("JOIN", rooms.join(","));
  for (const c of state.convs.values()) if (!c.isRoom) fetchMissed(c);
  const direct = [...state.convs.values()].filter((c) => !c.isRoom);
  watch(direct.map((c) => c.name), "+");
  for (const c of direct) askMarker(c);
}

function onIsupport(m) {
  for (const token of m.params.slice(1, -1)) {
    const [key, value = ""] = token.split("=");
    if (key === "CHANTYPES") state.chantypes = value || "#";
    if (key === "CASEMAPPING") setCasemapping(value);
    if (key === "PREFIX") setRanks(value);
    if (key === "CHANMODES") {
      const [lists = "", always = "", whenSet = ""] = value.split(",");
      state.takes = { always: lists + always, whenSet };
    }
    if (key === "MODES") state.maxModes = Number(value) || 12;
    if (key === "CHATHISTORY") state.historyMax = Number(value) || 1000;
  }
}

/** PREFIX=(ov)@+: the modes that rank members, and their symbols in NAMES. */
function setRanks(value) {
  const match = /^\((\w*)\)(\S*)$/.exec(value);
  if (!match) return;
  state.ranks = { modes: match[1], symbols: match[2] };
}

function onBatch(m) {
  const ref = m.params[0] || "";
  if (ref.startsWith("+")) {
    if (state.batches.size >= MAX_OPEN_BATCHES) return; // (their lines count as unbatched)
    // (A multiline message keeps what its opening line says: who, its msgid, time and
    // tags, and the batch it is itself in, a page of history perhaps.)
    const batch = { type: m.params[1], target: m.params[2], lines: [], tagmsgs: [], m };
    state.batches.set(ref.slice(1), batch);
    return;
  }
  const batch = state.batches.get(ref.slice(1));
  state.batches.delete(ref.slice(1));
  if (batch?.type === "chathistory") endHistory(batch);
  if (batch?.type === "draft/multiline") endMultiline(batch);
}

/** A multiline message is complete: its lines joined (with a line break, or none after a
 *  line marked draft/multiline-concat) and taken as one message. */
function endMultiline(batch) {
  const { m, lines } = batch;
  if (!lines.length) return;
  const text = lines.map((l, i) => (i === 0 || l.concat ? "" : "\n") + l.text).join("");
  const command = lines[0].command;
  onMessage({ ...m, command, params: [batch.target || lines[0].target, text] });
}

/** A page of history is in: put its lines in place, and show them at once. A batch no one
 *  asked for (direct messages that waited while this account was offline) is news. */
function endHistory(batch) {
  // (Its target is this user's own nick for the waiting messages: no conversation of that.)
  const c = conv(batch.target, fold(batch.target) !== fold(state.nick));
  const asked = c?.loading || false;
  if (c) c.loading = false;
  const reveal = c?.reveal && asked === "before";
  if (c) c.reveal = false;
  const count = batch.lines.length + batch.tagmsgs.length; // (what the page held)
  if (c && asked === "before") {
    prependLines(c, batch.lines.map((item) => item.line));
    if (count === 0) c.complete = true;
    if (reveal && batch.lines.length === 0) note(c.name, "There is nothing earlier.");
  } else {
    for (const { into, line } of batch.lines) {
      if (addLine(into, line) && !asked && !line.own) {
        noticeNew(into, line);
        if (!into.isRoom) state.lastDirect = into.name;
      }
    }
  }
  for (const m of batch.tagmsgs) onTagmsg({ ...m, tags: { ...m.tags, batch: undefined } });
  // A whole page of what was missed: there may be more after it.
  if (asked === "after" && count >= HISTORY_PAGE) fetchMissed(c);
  // What the account has not read yet (on any device) counts as unread.
  if (c && asked && fold(c.name) !== state.selected) countUnread(c);
  if (c) markRead(c);
  renderTargets();
  if (!batch.lines.some((item) => fold(item.into.name) === state.selected)) return;
  // The reader stays where they were: at the end for what was missed, at the same line
  // for earlier lines (which grow the log above it).
  const log = $("log");
  const fromBottom = log.scrollHeight - log.scrollTop;
  const atEnd = fromBottom - log.clientHeight < 40;
  renderLog();
  if (reveal) showTop();
  else if (asked === "before") log.scrollTop = log.scrollHeight - fromBottom;
  else if (atEnd) scrollToEnd();
  fillView();
}

/** Show the log from its first line, without that asking for a page more (onScroll). */
function showTop() {
  state.quietUntil = performance.now() + 1000;
  $("log").scrollTop = 0;
}

// -- messages ------------------------------------------------------------------------------------

function onMessage(m) {
  const [target, text = ""] = m.params;
  const batch = state.batches.get(m.tags.batch);
  if (batch?.type === "draft/multiline") {
    // One line of a message in several: kept until the batch ends (endMultiline).
    if (batch.lines.length < MULTILINE_BATCH_LINES) {
      const concat = "draft/multiline-concat" in m.tags;
      batch.lines.push({ text, concat, command: m.command, target });
    }
    return;
  }
  const fromHistory = batch?.type === "chathistory";
  // Before the welcome, a service may say the nick is an account's: we are logging in to
  // it with a password (SASL), so that is no news; anything else said then is the
  // server's, not a conversation's.
  const sasl = state.password && !state.create && state.offered.has("sasl");
  if (!state.registered && m.command === "NOTICE" && sasl) return;
  if (!state.registered || (!m.source.includes("!") && m.source === state.server)) {
    note(null, text, "server"); // the server's own notices: no person, no conversation
    return;
  }
  const own = fold(m.nick) === fold(state.nick);
  if (!own && ignored(m.source)) return;
  // A direct conversation is named after the other person, whoever spoke.
  const c = conv(isChannel(target, state.chantypes) || own ? target : m.nick);
  const action = m.command === "PRIVMSG" ? actionText(text) : null;
  if (action === null && text.startsWith("\x01")) return; // other CTCP: not shown
  const line = {
    msgid: m.tags.msgid || null,
    time: m.tags.time || new Date().toISOString(),
    nick: m.nick,
    text: action ?? text,
    kind: action !== null ? "action" : m.command === "NOTICE" ? "notice" : "message",
    own,
    reply: m.tags["+draft/reply"] || m.tags["+reply"] || null,
    redacted: false,
    reactions: new Map(), // reaction -> Map(folded nick -> nick)
  };
  if (fromHistory) {
    batch.lines.push({ into: c, line }); // placed when it ends (onBatch)
    return;
  }
  if (!addLine(c, line)) return;
  if (!own) noticeNew(c, line);
  if (!own && !c.isRoom) state.lastDirect = m.nick;
  refresh(c, true);
}

const ignored = (source) => state.ignores.some((mask) => maskMatches(mask, source));

/** The conversation a line from ``nick`` to ``target`` belongs to (a direct conversation is
 *  named after the other person, whoever spoke), if it is open. */
function convOf(nick, target) {
  const own = fold(nick) === fold(state.nick);
  return conv(isChannel(target, state.chantypes) || own ? target : nick, false);
}

/** A line shown in ``c`` by its msgid. */
const lineById = (c, msgid) => (c && msgid ? c.msgids.get(msgid) : undefined);

/** TAGMSG: a reaction (+draft/react) to a message, or one taken back (+draft/unreact). */
function onTagmsg(m) {
  const batch = state.batches.get(m.tags.batch);
  if (batch?.type === "chathistory") {
    // A reaction kept in the history: applied once the page's lines are in place.
    if (batch.tagmsgs.length < MAX_LINES) batch.tagmsgs.push(m);
    return;
  }
  const reply = m.tags["+draft/reply"] || m.tags["+reply"];
  const added = m.tags["+draft/react"];
  const removed = m.tags["+draft/unreact"];
  const reaction = added || removed;
  if (!reply || !reaction || [...reaction].length > MAX_REACTION) return;
  if (fold(m.nick) !== fold(state.nick) && ignored(m.source)) return;
  const c = convOf(m.nick, m.params[0] || "");
  const line = lineById(c, reply);
  if (c && !line) {
    // For a message not here (yet): history pages come newest first, so a message's
    // reactions can come before it. Kept, a few, until it comes.
    const waiting = c.pending.get(reply) || [];
    if (waiting.length < MAX_REACTION_KINDS && (waiting.length || c.pending.size < MAX_PENDING)) {
      c.pending.set(reply, [...waiting, m]);
    }
    return;
  }
  if (!line || line.redacted) return;
  const who = line.reactions.get(reaction) || new Map();
  if (added) {
    if (!line.reactions.has(reaction) && line.reactions.size >= MAX_REACTION_KINDS) return;
    if (who.size >= MAX_REACTORS) return;
    who.set(fold(m.nick), m.nick);
    line.reactions.set(reaction, who);
  } else {
    who.delete(fold(m.nick));
    if (!who.size) line.reactions.delete(reaction);
  }
  redrawReactions(line);
}

/** REDACT: a message taken back; shown as deleted wherever it is shown. */
function onRedact(m) {
  const [target = "", msgid = ""] = m.params;
  const line = lineById(convOf(m.nick, target), msgid);
  if (!line) return;
  line.redacted = true;
  line.text = "";
  line.reactions = new Map();
  if (state.replyTo?.line === line) setReplyTo(null);
  redraw(line);
  // (The replies to it quote it: as deleted now.)
  const c = convOf(m.nick, target);
  for (const other of c.lines) if (other.reply === msgid) redraw(other);
}

/** MARKREAD: the account's read marker of a conversation moved (here, or on another of its
 *  devices): what is unread is counted from it, and the divider moves with it. */
function onMarkread(m) {
  const [target = "", stamp = ""] = m.params;
  const c = conv(target, false);
  const at = stamp.startsWith("timestamp=") ? stamp.slice("timestamp=".length) : null;
  if (!c || !at || Number.isNaN(Date.parse(at))) return;
  if (c.readAt && at <= c.readAt) return;
  c.readAt = at;
  const ours = c.readSent && at <= c.readSent;
  if (!ours || fold(c.name) !== state.selected) c.newFrom = at;
  if (fold(c.name) !== state.selected || document.hidden) countUnread(c);
  renderTargets();
  if (fold(c.name) === state.selected) renderLog();
}

/** Whether ``line`` counts as unread news: someone else's message, kept by the server. */
const isNews = (line) =>
  !line.own && line.msgid && ["message", "action", "notice"].includes(line.kind);

/** The unread count of ``c`` from its read marker and the lines it has. */
function countUnread(c) {
  if (!c.readAt) return;
  const news = c.lines.filter((l) => isNews(l) && l.time > c.readAt);
  c.unread = news.length;
  c.mentions = news.filter((l) => !c.isRoom || mentions(l.text, state.nick)).length;
}

/** The conversation shown has been read, to its last line: tell the server (and so the
 *  account's other devices), once per line. */
function markRead(c) {
  if (!c || !has("draft/read-marker") || !state.loggedIn || c.readTimer) return;
  // (At most one a second: a busy room read as it goes is not a MARKREAD per line.)
  const wait = Math.max(0, (c.readLast || -Infinity) + READ_PACE - performance.now());
  c.readTimer = setTimeout(() => {
    c.readTimer = null;
    if (!connected() || document.hidden || fold(c.name) !== state.selected) return;
    const last = [...c.lines].reverse().find((l) => l.msgid)?.time;
    if (!last || (c.readAt && last <= c.readAt) || (c.readSent && last <= c.readSent)) return;
    c.readSent = last;
    c.readLast = performance.now();
    send("MARKREAD", c.name, `timestamp=${last}`);
  }, wait);
}

/** A direct conversation's read marker, asked for (a room's comes on joining it). */
function askMarker(c) {
  if (!c.isRoom && has("draft/read-marker") && state.loggedIn) send("MARKREAD", c.name);
}

// -- metadata (IRCv3 draft/metadata-2): display names, colours, avatars ----------------------

/** What the page shows of someone: their display name, colour and avatar, each checked. */
const metaOf = (nick) => state.meta.get(fold(nick)) || {};

/** The name to show for ``nick``: their display name, if they set one. */
const shownName = (nick) => metaOf(nick).name || nick;

/** A METADATA value for a person (a room's are not used): kept only once checked. */
function setMeta(target, key, value) {
  if (!target || isChannel(target, state.chantypes) || target === "*") return;
  const known = state.meta.get(fold(target));
  if (!known && state.meta.size >= MAX_META_PEOPLE) return;
  const entry = known || {};
  const raw = typeof value === "string" && value.length <= MAX_META_VALUE ? value : null;
  const k = (key || "").toLowerCase();
  if (k === "display-name") entry.name = raw === null ? undefined : safeDisplayName(raw);
  else if (k === "color") entry.colour = raw === null ? undefined : safeColour(raw.trim());
  else if (k === "avatar") entry.avatar = raw === null ? undefined : safeImageUrl(raw.trim());
  else if (k === "status") entry.status = raw === null ? undefined : safeDisplayName(raw);
  else return;
  state.meta.set(fold(target), entry);
  metaChanged(target);
}

/** A key's value (RPL_KEYVALUE), or its absence (ERR_KEYNOTSET): our own answers are told. */
function onKeyValue(target, key, value) {
  setMeta(target, key, value);
  const k = (key || "").toLowerCase();
  if (fold(target || "") !== fold(state.nick) || !state.metaAsked.has(k)) return;
  state.metaAsked.delete(k);
  const what = { "display-name": "display name", color: "colour" }[k] || k;
  note(null, value === null ? `Your ${what} is cleared.` : `Your ${what} is now ${value}.`);
}

const metaRedraws = new Set(); // folded nicks whose lines are to be drawn again
let metaTimer = null;

/** Someone's metadata changed: their lines and the lists are drawn again (once for many
 *  changes together, as on joining a room). */
function metaChanged(nick) {
  metaRedraws.add(fold(nick));
  if (metaTimer) return;
  metaTimer = setTimeout(() => {
    metaTimer = null;
    const c = state.convs.get(state.selected);
    for (const line of c?.lines || []) if (metaRedraws.has(fold(line.nick))) redraw(line);
    if (metaRedraws.has(fold(state.nick))) fillProfile();
    metaRedraws.clear();
    $("me").textContent = shownName(state.nick);
    renderMembers();
    renderTargets();
  }, 0);
}

/** The profile form shows what the server has of ours (when it keeps metadata). */
function fillProfile() {
  $("profile").hidden = !has("draft/metadata-2");
  const { name, colour, avatar } = metaOf(state.nick);
  $("profile-name").value = name || "";
  $("profile-no-colour").checked = !colour;
  if (colour) $("profile-colour").value = fullHex(colour);
  $("profile-avatar").value = avatar || "";
}

/** "#d14" -> "#dd1144" (what a colour input takes). */
const fullHex = (colour) =>
  colour.length === 4 ? `#${[...colour.slice(1)].map((d) => d + d).join("")}` : colour;

/** The profile form sent: what changed is set (an empty field: cleared). */
function saveProfile() {
  const { name, colour, avatar } = metaOf(state.nick);
  const wanted = {
    "display-name": $("profile-name").value.trim(),
    color: $("profile-no-colour").checked ? "" : $("profile-colour").value,
    avatar: $("profile-avatar").value.trim(),
  };
  const had = {
    "display-name": name || "",
    color: colour ? fullHex(colour) : "",
    avatar: avatar || "",
  };
  let changed = false;
  for (const [key, value] of Object.entries(wanted)) {
    if (value.toLowerCase() === had[key].toLowerCase()) continue;
    changed = true;
    const problem = setOwnMeta(key, value);
    if (problem) note(null, problem, "error");
  }
  if (!changed) note(null, "Nothing to change in your profile.");
}

/** Subscribed (RPL_METADATASUBOK): the rooms joined before (the default one, on signing in)
 *  are asked for their members' values; those joined from now on come with them. */
function onSubscribed() {
  if (state.metaSynced) return;
  state.metaSynced = true;
  for (const c of state.convs.values()) if (c.isRoom && c.joined) send("METADATA", c.name, "SYNC");
}

/** /displayname, /color, /avatar, /status: one of our own keys set (no value: cleared). */
function setOwnMeta(key, value) {
  if (!has("draft/metadata-2")) return "This server keeps no display names, colours or avatars.";
  if (value && key === "color" && !safeColour(value)) {
    return "A colour is written #rrggbb (or #rgb), such as #1e90ff.";
  }
  if (value && key === "avatar" && !safeImageUrl(value)) {
    return "An avatar is the web address (https or http) of an image.";
  }
  state.metaAsked.add(key);
  if (value) send("METADATA", "*", "SET", key, value);
  else send("METADATA", "*", "SET", key);
}

/** Add ``line`` at the end of ``c``, or after the last line not later than it (lines
 *  fetched after a reconnection may come after newer live ones). False when it was there
 *  already (the same msgid). */
function addLine(c, line) {
  if (line.msgid) {
    if (c.msgids.has(line.msgid)) return false;
    c.msgids.set(line.msgid, line);
  }
  let at = c.lines.length;
  while (at > 0 && c.lines[at - 1].time > line.time) at -= 1;
  c.lines.splice(at, 0, line);
  reactionsWaiting(c, line);
  if (c.lines.length > MAX_LINES) {
    // The oldest go, and are forgotten: scrolling back up fetches them again.
    for (const old of c.lines.splice(0, c.lines.length - MAX_LINES)) c.msgids.delete(old.msgid);
    c.complete = false;
  }
  return true;
}

/** The reactions that came before ``line`` itself, now given to it. */
function reactionsWaiting(c, line) {
  const waiting = line.msgid && c.pending.get(line.msgid);
  if (!waiting) return;
  c.pending.delete(line.msgid);
  for (const m of waiting) onTagmsg(m);
}

/** Earlier lines, a page of them in order: before everything there is (timestamps may be
 *  equal, so they are not sorted by them). */
function prependLines(c, lines) {
  const fresh = lines.filter((l) => !l.msgid || !c.msgids.has(l.msgid));
  for (const l of fresh) if (l.msgid) c.msgids.set(l.msgid, l);
  c.lines.unshift(...fresh);
  for (const l of fresh) reactionsWaiting(c, l);
}

/** Count a new line as unread (and maybe a mention), and tell the user if they are away
 *  from the tab and it is for them. */
function noticeNew(c, line) {
  const mention = !c.isRoom || mentions(line.text, state.nick);
  const seen = fold(c.name) === state.selected && !document.hidden;
  if (!seen) {
    c.unread += 1;
    if (mention) c.mentions += 1;
  }
  if (mention && document.hidden) notify(c, line);
}

function notify(c, line) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const title = c.isRoom ? `${line.nick} in ${c.name}` : line.nick;
  let shown;
  try {
    shown = new Notification(plainText(title), { body: plainText(line.text), tag: fold(c.name) });
  } catch {
    return; // (some mobile browsers only notify from a service worker: none here)
  }
  shown.addEventListener("click", () => {
    window.focus();
    select(c.name);
  });
}

/** A line of the client's own (an error, a notice from the server, an answer), or several
 *  (``text`` an array), in ``name``'s conversation, or the one shown. */
function note(name, text, kind = "note") {
  const texts = [].concat(text);
  const c = name ? conv(name) : state.convs.get(state.selected);
  if (!c) {
    setStatus(plainText(texts.at(-1) || ""), kind === "error");
    return;
  }
  const time = new Date().toISOString();
  for (const t of texts) c.lines.push({ msgid: null, time, nick: "", text: t, kind });
  refresh(c, true);
}

const FAILED = {
  REDACT: "The message could not be deleted",
  METADATA: "That could not be set",
  BATCH: "The message was not sent",
};

function onFail(m) {
  const [command, code] = m.params;
  if (command === "CHATHISTORY") {
    for (const c of state.convs.values()) c.loading = false;
    return;
  }
  if (command === "MARKREAD") return; // (read markers are a convenience: nothing to say)
  if (command in FAILED) {
    if (command === "METADATA") state.metaAsked.clear();
    note(null, `${FAILED[command]}: ${plainText(m.params.at(-1) || code)}`, "error");
    return;
  }
  if (command === "REGISTER") {
    state.create = false;
    state.newPassword = "";
  }
  note(null, `${command}: ${m.params.at(-1) || code}`, "error");
}

/** An account for the alias in use, with ``password``: as the sign-in form's "create an
 *  account" does once in, and /register. */
function registerAccount(password) {
  state.newPassword = password;
  return send("REGISTER", "*", "*", password);
}

function onRegistered(m) {
  // The account exists now: sign in with it from here on (after a lost connection too).
  state.create = false;
  state.account = m.params[1] || state.nick;
  state.password = state.newPassword || state.password;
  state.newPassword = "";
  state.loggedIn = true;
  note(null, `Account ${state.account} created.`);
}

// -- rooms and people ---------------------------------------------------------------------------

function onJoin(m) {
  const c = conv(m.params[0]);
  if (fold(m.nick) === fold(state.nick)) {
    c.joined = true;
    c.members.clear();
    c.namesDone = true;
    fetchMissed(c);
    if (!state.selected || !state.convs.has(state.selected)) select(c.name);
    else if (c.wantSelect) select(c.name);
    c.wantSelect = false;
  } else {
    c.members.set(fold(m.nick), { nick: m.nick, prefix: "", away: false });
    note(c.name, `${m.nick} joined`, "event");
  }
  refresh(c, false);
}

/** After (re)joining or reconnecting: what ``c`` missed since its last line, or its latest
 *  lines if it has none yet. */
function fetchMissed(c) {
  if (!has("draft/chathistory") || c.loading) return;
  const last = [...c.lines].reverse().find((l) => l.msgid)?.msgid || c.lastSeen;
  c.loading = last ? "after" : "latest";
  if (last) send("CHATHISTORY", "AFTER", c.name, `msgid=${last}`, String(HISTORY_PAGE));
  else send("CHATHISTORY", "LATEST", c.name, "*", String(HISTORY_PAGE));
}

/** Scrolled to the top: the page before the oldest line shown (not after a /clear). */
function fetchEarlier(c) {
  if (!has("draft/chathistory") || c.loading || c.complete || c.cleared) return;
  const first = c.lines.find((l) => l.msgid);
  if (!first) return;
  c.loading = "before";
  send("CHATHISTORY", "BEFORE", c.name, `msgid=${first.msgid}`, String(HISTORY_PAGE));
}

/** /history: ``count`` lines before the first shown (or before now, the view cleared), shown
 *  from the first when they come. */
function loadEarlier(c, count) {
  const first = c.lines.find((l) => l.msgid);
  const ref = first ? `msgid=${first.msgid}` : `timestamp=${new Date().toISOString()}`;
  c.cleared = false;
  c.complete = false;
  c.reveal = true;
  c.loading = "before";
  send("CHATHISTORY", "BEFORE", c.name, ref, String(Math.min(count, state.historyMax)));
}

/** /clear: the view of ``c`` emptied; its lines come back on /history. */
function clearConv(c) {
  c.lastSeen = [...c.lines].reverse().find((l) => l.msgid)?.msgid || c.lastSeen;
  c.lines = [];
  c.msgids = new Map();
  c.cleared = true;
  c.complete = false;
  renderLog();
}

function onLeave(nick, room, how) {
  const c = conv(room, false);
  if (!c) return;
  if (fold(nick) === fold(state.nick)) {
    state.convs.delete(fold(room));
    if (state.selected === fold(room)) state.selected = null;
    select(firstConv());
    return;
  }
  c.members.delete(fold(nick));
  note(c.name, `${nick} ${how}`, "event");
}

function onKick(m) {
  const [room, nick, reason] = m.params;
  const by = `by ${m.nick}` + (reason ? ` (${reason})` : "");
  onLeave(nick, room, `was removed ${by}`);
  if (fold(nick) === fold(state.nick)) note(null, `You were removed from ${room} ${by}.`, "error");
}

/** A room's modes changed: shown, and the members' ranks (@, +) follow. */
function onMode(m) {
  const [target, modes = "", ...args] = m.params;
  const what = [modes, ...args].join(" ");
  if (!isChannel(target, state.chantypes)) {
    if (fold(target) === fold(state.nick)) note(null, `Your modes: ${what}`, "event");
    return;
  }
  const c = conv(target, false);
  if (!c) return;
  const { modes: ranks, symbols } = state.ranks;
  const takes = { always: state.takes.always + ranks, whenSet: state.takes.whenSet };
  for (const { add, mode, param } of modeChanges(modes, args, takes)) {
    const member = ranks.includes(mode) && param && c.members.get(fold(param));
    if (!member) continue;
    const held = new Set(member.prefix);
    held[add ? "add" : "delete"](symbols[ranks.indexOf(mode)]);
    member.prefix = [...symbols].filter((s) => held.has(s)).join("");
  }
  note(c.name, `${m.nick} sets ${what}`, "event");
}

function onQuit(m) {
  for (const c of state.convs.values()) {
    if (c.members.delete(fold(m.nick))) note(c.name, `${m.nick} left the chat`, "event");
  }
}

function onNick(m) {
  const [after] = m.params;
  const own = fold(m.nick) === fold(state.nick);
  const meta = state.meta.get(fold(m.nick));
  if (meta) {
    state.meta.delete(fold(m.nick));
    state.meta.set(fold(after), meta);
  }
  if (own) {
    state.nick = after;
    $("me").textContent = shownName(after);
  }
  for (const c of state.convs.values()) {
    const member = c.members.get(fold(m.nick));
    if (!member) continue;
    c.members.delete(fold(m.nick));
    member.nick = after;
    c.members.set(fold(after), member);
    note(c.name, `${m.nick} is now ${after}`, "event");
  }
  // A direct conversation follows the person to their new name.
  const dm = state.convs.get(fold(m.nick));
  if (dm && !dm.isRoom && !state.convs.has(fold(after))) {
    state.convs.delete(fold(m.nick));
    dm.name = after;
    state.convs.set(fold(after), dm);
    if (state.selected === fold(m.nick)) state.selected = fold(after);
  }
  renderTargets();
  renderHeading();
}

/** RENAME (draft/channel-rename): a room has a new name. Its conversation takes it in place,
 *  with all it holds (lines, members, unread count, read marker, reply and reactions), and
 *  stays shown if it was; a line says who renamed it. A change of case only is a rename too. */
function onRename(m) {
  const [before = "", after = "", reason = ""] = m.params;
  if (state.batches.get(m.tags.batch)?.type === "chathistory") return; // (then, not now)
  const c = conv(before, false);
  if (!c?.isRoom || !isChannel(after, state.chantypes)) return;
  if (after.length > MAX_ROOM_NAME || /[\s,\x00-\x1f\x7f]/.test(after)) return;
  const from = fold(before);
  const to = fold(after);
  const old = c.name;
  const other = state.convs.get(to);
  if (other && other !== c) return; // (the name is another conversation's: not taken from it)
  state.convs.delete(from);
  c.name = after;
  state.convs.set(to, c);
  if (state.selected === from) state.selected = to;
  // What is on its way under the old name follows the room.
  for (const batch of state.batches.values()) {
    if (batch.target && fold(batch.target) === from) batch.target = after;
  }
  const asked = state.namesAsked.get(from);
  if (asked && from !== to) {
    state.namesAsked.delete(from);
    state.namesAsked.set(to, asked);
  }
  for (const item of state.pasteQueue) if (fold(item[0]) === from) item[0] = after;
  const why = reason ? ` (${reason})` : "";
  note(c.name, `${m.nick} renamed ${old} to ${after}${why}`, "event");
  renderTargets();
  if (state.selected === to) renderHeading();
}

function onNames(m) {
  state.namesAsked.get(fold(m.params[2] || ""))?.push(...(m.params[3] || "").split(" "));
  const c = conv(m.params[2], false);
  if (!c) return;
  if (c.namesDone) c.members.clear();
  c.namesDone = false;
  for (const item of (m.params[3] || "").split(" ")) {
    const match = /^([~&@%+]*)(.+)$/.exec(item);
    if (!match) continue;
    const nick = match[2].split("!")[0];
    c.members.set(fold(nick), { nick, prefix: match[1], away: false });
  }
  if (fold(c.name) === state.selected) renderMembers();
}

/** The end of a NAMES reply: shown when /users asked for it (not on joining). */
function onNamesEnd(m) {
  const room = m.params[1] || "";
  const c = conv(room, false);
  if (c) c.namesDone = true;
  const asked = state.namesAsked.get(fold(room))?.filter(Boolean);
  state.namesAsked.delete(fold(room));
  if (asked?.length) note(null, `In ${room} (${asked.length}): ${asked.join(", ")}`);
  else if (asked) note(null, `No one in ${room}.`);
}

/** TOPIC: the room's topic changed; one from the history is shown where it was, as a line,
 *  and is not the room's topic now. */
function onTopic(m) {
  const [room = "", topic = ""] = m.params;
  const batch = state.batches.get(m.tags.batch);
  if (batch?.type !== "chathistory") {
    setTopic(room, topic, m.nick);
    return;
  }
  const c = conv(room, false);
  if (!c) return;
  const line = {
    msgid: m.tags.msgid || null,
    time: m.tags.time || new Date().toISOString(),
    nick: "",
    text: `${m.nick} set the topic: ${topic}`,
    kind: "event",
    own: false,
    reactions: new Map(),
  };
  batch.lines.push({ into: c, line });
}

function setTopic(room, topic, by) {
  const c = conv(room, false);
  if (!c) return;
  c.topic = topic;
  if (by) note(c.name, `${by} set the topic: ${topic}`, "event");
  if (fold(room) === state.selected) renderHeading();
}

function setAway(nick, away) {
  for (const c of state.convs.values()) {
    const member = c.members.get(fold(nick));
    if (member) member.away = away;
  }
  if (state.selected) renderMembers();
}

function setOwnAway(away) {
  state.away = away;
  note(null, away ? "You are marked as away." : "You are back.", "event");
}

// -- what the user types ------------------------------------------------------------------------

const USAGE = Symbol("usage"); // what a command returns to have its usage shown
const NO_ROOM = "Open a room first, or name one.";

const current = () => state.convs.get(state.selected);
const currentRoom = () => (current()?.isRoom ? current().name : null);

/** A command's words: its leading #room if it names one (else the room shown), and the rest. */
function roomAnd(args) {
  const named = isChannel(args[0] || "", state.chantypes);
  return named ? [args[0], args.slice(1)] : [currentRoom(), args];
}

/**
 * The commands, as /help lists them: how each is used, what it does, its other names, whether
 * it works while disconnected, and what it does with its words (``args``) and the text after
 * its name (``rest``). A string it returns is shown as an error; USAGE shows how to use it.
 */
const COMMANDS = {
  msg: {
    use: "/msg <alias> <text>",
    help: "send a direct message",
    also: "dm",
    offline: true,
    run: ([nick, ...words]) => (nick && words.length ? message(nick, words.join(" ")) : USAGE),
  },
  query: {
    use: "/query <alias> [text]",
    help: "open a conversation with someone",
    also: "q",
    offline: true,
    run: ([nick, ...words]) => (nick ? query(nick, words.join(" ")) : USAGE),
  },
  r: {
    use: "/r <text>",
    help: "reply to the last direct message",
    also: "reply",
    offline: true,
    run: (_, rest) => (rest ? reply(rest) : USAGE),
  },
  users: {
    use: "/users [#room]",
    help: "who is in the room",
    also: "names",
    run: ([room]) => listMembers(room || currentRoom()),
  },
  who: {
    use: "/who [mask]",
    help: "who is online, with details",
    run: ([mask]) => void send("WHO", mask || current()?.name || "*"),
  },
  join: {
    use: "/join <#room> [key]",
    help: "join (or create) a room and talk there",
    run: ([room, key]) => (room ? joinRoom(room, key) : USAGE),
  },
  part: {
    use: "/part [#room] [reason]",
    help: "leave a room",
    also: "leave",
    run: (args) => part(...roomAnd(args)),
  },
  nick: {
    use: "/nick <alias>",
    help: "change your alias",
    run: ([nick]) => (nick ? void send("NICK", nick) : USAGE),
  },
  me: {
    use: "/me <action>",
    help: "describe what you do",
    offline: true,
    run: (_, rest) => (rest ? act(rest) : USAGE),
  },
  rename: {
    use: "/rename <#new name> [reason]",
    help: "give the room a new name (its operators)",
    run: ([name, ...reason]) => rename(name, reason.join(" ")),
  },
  topic: {
    use: "/topic [text]",
    help: "show or set the room's topic",
    run: (_, rest) => topic(rest),
  },
  away: {
    use: "/away [message]",
    help: "mark yourself away (no message: back)",
    run: (_, rest) => void (rest ? send("AWAY", rest) : send("AWAY")),
  },
  whois: {
    use: "/whois <alias>",
    help: "details about someone",
    run: ([nick]) => (nick ? void send("WHOIS", nick) : USAGE),
  },
  list: {
    use: "/list [mask]",
    help: "list the rooms",
    run: ([mask]) => void (mask ? send("LIST", mask) : send("LIST")),
  },
  invite: {
    use: "/invite <alias> [#room]",
    help: "invite someone to a room",
    run: ([nick, room]) => invite(nick, room),
  },
  kick: {
    use: "/kick [#room] <alias> [reason]",
    help: "remove someone from the room",
    also: "k",
    run: (args) => kick(...roomAnd(args)),
  },
  ban: {
    use: "/ban [#room] <alias|mask>...",
    help: "ban from the room (no alias: list the bans)",
    run: (args) => ban("+b", ...roomAnd(args)),
  },
  unban: {
    use: "/unban [#room] <alias|mask>...",
    help: "lift a ban",
    also: "ub",
    run: (args) => ban("-b", ...roomAnd(args)),
  },
  op: {
    use: "/op [#room] <alias>...",
    help: "make room operator",
    run: (args) => rank("+o", ...roomAnd(args)),
  },
  deop: {
    use: "/deop [#room] <alias>...",
    help: "no longer room operator",
    run: (args) => rank("-o", ...roomAnd(args)),
  },
  voice: {
    use: "/voice [#room] <alias>...",
    help: "give a voice in a moderated room",
    run: (args) => rank("+v", ...roomAnd(args)),
  },
  devoice: {
    use: "/devoice [#room] <alias>...",
    help: "take the voice back",
    run: (args) => rank("-v", ...roomAnd(args)),
  },
  mode: {
    use: "/mode [target] <modes>",
    help: "change or show modes",
    run: (args) => mode(args),
  },
  history: {
    use: "/history [N]",
    help: `load N (${HISTORY_SHOWN}) earlier lines of this conversation`,
    run: ([n]) => loadHistory(n),
  },
  close: {
    use: "/close [conversation]",
    help: "close a direct conversation, or leave a room",
    also: "wc",
    offline: true,
    run: ([name]) => closeNamed(name),
  },
  clear: {
    use: "/clear",
    help: "clear the view of this conversation",
    also: "c cl",
    offline: true,
    run: () => void (current() && clearConv(current())),
  },
  ignore: {
    use: "/ignore [mask]",
    help: "hide someone's messages (no mask: list)",
    offline: true,
    run: ([mask]) => ignore(mask),
  },
  unignore: {
    use: "/unignore <mask>",
    help: "show their messages again",
    offline: true,
    run: ([mask]) => (mask ? unignore(mask) : USAGE),
  },
  reconnect: {
    use: "/reconnect",
    help: "connect again",
    offline: true,
    run: () => reconnect(),
  },
  delete: {
    use: "/delete",
    help: "delete your last message in this conversation",
    run: () => deleteLast(),
  },
  displayname: {
    use: "/displayname [name]",
    help: "the name others see for you (none: your alias)",
    run: (_, rest) => setOwnMeta("display-name", rest),
  },
  color: {
    use: "/color [#rrggbb]",
    help: "the colour of your name (none: the usual one)",
    also: "colour",
    run: ([value]) => setOwnMeta("color", value),
  },
  avatar: {
    use: "/avatar [image address]",
    help: "your picture, from a web address (none: no picture)",
    run: ([value]) => setOwnMeta("avatar", value),
  },
  status: {
    use: "/status [text]",
    help: "a few words others see beside your name (none: cleared)",
    run: (_, rest) => setOwnMeta("status", rest),
  },
  register: {
    use: "/register <password>",
    help: "make your alias an account (sign in with it next time)",
    run: (_, rest) => (rest ? void registerAccount(rest) : USAGE),
  },
  quote: {
    use: "/quote <raw IRC line>",
    help: "send a line as it is",
    also: "raw",
    run: (_, rest) => (rest ? void sendLine(rest) : USAGE),
  },
  quit: {
    use: "/quit [reason]",
    help: "sign out",
    also: "exit",
    offline: true,
    run: (_, rest) => signOut(rest),
  },
  help: {
    use: "/help",
    help: "this list",
    offline: true,
    run: () => showHelp(),
  },
};

/** Each command by its name, and by its other names. */
const COMMAND_NAMED = new Map(
  Object.entries(COMMANDS).flatMap(([name, command]) =>
    [name, ...(command.also || "").split(" ").filter(Boolean)].map((n) => [n, command]),
  ),
);

function submitInput(text) {
  // Several lines are a message, never a command (as a paste in the terminal client).
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  if (lines.length === 1 && text.startsWith("/") && !text.startsWith("//")) {
    runCommand(text.slice(1));
    return;
  }
  const c = current();
  if (!c) return;
  const body = text.startsWith("//") ? text.slice(1) : text;
  if (lines.length > 1) sayLines(c.name, body);
  else say(c.name, body);
}

function runCommand(line) {
  const word = line.split(" ", 1)[0];
  const rest = line.slice(word.length).trim();
  const command = COMMAND_NAMED.get(word.toLowerCase());
  let problem;
  if (!command) problem = `Unknown command /${word}. Try /help.`;
  else if (!command.offline && !connected()) problem = "Not connected: try again once back.";
  else problem = command.run(rest.split(" ").filter(Boolean), rest);
  if (problem) note(null, problem === USAGE ? `Usage: ${command.use}` : problem, "error");
}

function showHelp() {
  const lines = Object.values(COMMANDS).map((command) => `${command.use} — ${command.help}`);
  note(null, "Commands:");
  note(
    null,
    [
      ...lines,
      "Alt+Up and Alt+Down change conversation; //text sends /text.",
      "Enter sends; Shift+Enter starts a new line of the same message.",
      "A message's ⋯ button (or Tab to it): reply, react, delete.",
    ],
    "detail",
  );
}

/** The tags a message sent now carries: the message it answers, if any (then forgotten). */
function replyTags(target) {
  const to = state.replyTo;
  if (!to || fold(to.conv.name) !== fold(target) || !has("message-tags")) return {};
  setReplyTo(null);
  return { "+draft/reply": to.line.msgid };
}

/** Send a message; without echo-message the server does not send it back, so show it. */
function say(target, text) {
  const tags = replyTags(target);
  if (!sendLine(buildTagged(tags, "PRIVMSG", target, text))) {
    note(null, "Not connected: the message was not sent.", "error");
    return;
  }
  showOwn(target, text, tags);
}

/** Our own message, shown as sent when the server will not echo it. */
function showOwn(target, text, tags) {
  if (has("echo-message")) return;
  const source = `${state.nick}!me@here`;
  onMessage({ tags, source, nick: state.nick, command: "PRIVMSG", params: [target, text] });
}

/** The limits of one multiline message, from the server's draft/multiline value. */
function multilineLimits() {
  const tokens = capTokens(state.offered.get("draft/multiline"));
  const bytes = Number(tokens["max-bytes"]);
  const lines = Number(tokens["max-lines"]);
  return {
    bytes: Number.isInteger(bytes) && bytes > 0 ? bytes : 4096,
    lines: Number.isInteger(lines) && lines > 0 ? lines : Infinity,
  };
}

/**
 * Several lines of text (typed with Shift+Enter, or pasted). With draft/multiline, one
 * message: a batch of lines, a long line in pieces joined by draft/multiline-concat; text
 * over the server's limits goes as several such messages, and the user is told. Without
 * it, each line that is not blank is a message of its own, sent at a pace the server
 * accepts.
 */
function sayLines(target, text) {
  const lines = text.split("\n");
  while (lines.length && !lines.at(-1).trim()) lines.pop();
  while (lines.length && !lines[0].trim()) lines.shift();
  if (!lines.length) return;
  if (!(has("draft/multiline") && has("batch"))) {
    const tags = replyTags(target); // (the first line answers)
    const first = lines.findIndex((l) => l.trim());
    lines.forEach((line, i) => {
      if (line.trim()) state.pasteQueue.push([target, line, i === first ? tags : {}]);
    });
    sendPaced();
    return;
  }
  const limits = multilineLimits();
  // A line too long for one message by itself is cut into lines that fit.
  const most = Math.min(limits.bytes, MULTILINE_PIECE * Math.min(limits.lines, 1000));
  const fitting = lines.flatMap((line) => splitBytes(line, most));
  const messages = [];
  let pieces = []; // [{text, concat}] of the message being made
  let bytes = 0;
  for (const line of fitting) {
    const parts = splitBytes(line, MULTILINE_PIECE);
    const size = utf8Length(line);
    const over = bytes + 1 + size > limits.bytes || pieces.length + parts.length > limits.lines;
    if (pieces.length && over) {
      messages.push(pieces);
      pieces = [];
    }
    bytes = pieces.length ? bytes + 1 + size : size;
    parts.forEach((part, i) => pieces.push({ text: part, concat: i > 0 }));
  }
  if (pieces.length) messages.push(pieces);
  // (No message of blank lines only: the specification forbids them.)
  messages.splice(0, messages.length, ...messages.filter((p) => p.some((l) => l.text.trim())));
  const tags = replyTags(target);
  for (const [i, message] of messages.entries()) {
    if (!sendMultiline(target, message, i === 0 ? tags : {})) {
      note(null, "Not connected: the message was not sent.", "error");
      return;
    }
  }
  if (messages.length > 1) {
    const orLines = limits.lines === Infinity ? "" : ` or ${limits.lines} lines`;
    note(
      null,
      `That was too long for one message (this server takes ${limits.bytes} bytes${orLines}): ` +
        `it went as ${messages.length} messages.`,
    );
  }
}

/** One multiline message: BATCH +ref draft/multiline target, its lines, BATCH -ref. */
function sendMultiline(target, pieces, tags) {
  const ref = `ml${state.nextBatch++}`;
  if (!sendLine(buildTagged(tags, "BATCH", `+${ref}`, "draft/multiline", target))) return false;
  for (const { text, concat } of pieces) {
    const lineTags = concat ? { batch: ref, "draft/multiline-concat": "" } : { batch: ref };
    // (An empty line needs its ":"; buildLine adds it.)
    sendLine(buildTagged(lineTags, "PRIVMSG", target, text));
  }
  sendLine(buildLine("BATCH", `-${ref}`));
  const joined = pieces.map((p, i) => (i && !p.concat ? "\n" : "") + p.text).join("");
  showOwn(target, joined, tags);
  return true;
}

/** The lines of a paste, one message each, a few a second (the server's flood limit). */
function sendPaced() {
  if (state.pasteTimer) return;
  const next = state.pasteQueue.shift();
  if (!next) return;
  const [target, text, tags] = next;
  if (!sendLine(buildTagged(tags, "PRIVMSG", target, text))) {
    state.pasteQueue = [];
    note(null, "Not connected: the message was not sent.", "error");
    return;
  }
  showOwn(target, text, tags);
  state.pasteTimer = setTimeout(() => {
    state.pasteTimer = null;
    sendPaced();
  }, PASTE_PACE);
}

/** /msg: the message sent, and its conversation shown (if it is a person). */
function message(nick, text) {
  say(nick, text);
  if (!isChannel(nick, state.chantypes)) select(conv(nick).name);
}

function query(nick, text) {
  openDirect(nick);
  if (text) say(nick, text);
}

function reply(text) {
  if (!state.lastDirect) return "No one has sent you a direct message yet.";
  message(state.lastDirect, text);
}

function act(text) {
  const c = current();
  if (!c) return "Open a conversation first.";
  say(c.name, `\x01ACTION ${text}\x01`);
}

function listMembers(room) {
  if (!room) return NO_ROOM;
  state.namesAsked.set(fold(room), []); // (so that the answer is shown: see onNamesEnd)
  send("NAMES", room);
}

function part(room, reason) {
  const c = current();
  if (room) send("PART", room, reason.join(" ") || "Leaving");
  else if (c) closeConv(c); // a direct conversation: just put away
}

function topic(text) {
  const c = current();
  if (!c?.isRoom) return NO_ROOM;
  if (text) send("TOPIC", c.name, text);
  else note(null, c.topic ? `Topic: ${c.topic}` : "No topic is set.");
}

/** /rename: the room shown gets a new name; the server says whether it may (an operator's). */
function rename(name, reason) {
  if (!name || !isChannel(name, state.chantypes)) return USAGE;
  const c = current();
  if (!c?.isRoom) return NO_ROOM;
  if (!has("draft/channel-rename")) return "This server cannot rename rooms.";
  send("RENAME", c.name, name, ...(reason ? [reason] : []));
}

function invite(nick, room) {
  if (!nick || (room && !isChannel(room, state.chantypes))) return USAGE;
  if (!room && !currentRoom()) return NO_ROOM;
  send("INVITE", nick, room || currentRoom());
}

function kick(room, [nick, ...reason]) {
  if (!nick) return USAGE;
  if (!room) return NO_ROOM;
  send("KICK", room, nick, ...(reason.length ? [reason.join(" ")] : []));
}

function ban(change, room, masks) {
  if (!room) return NO_ROOM;
  if (masks.length) setModes(room, change, masks.map((m) => fullMask(m) || m));
  else if (change === "+b") send("MODE", room, "+b"); // the list of bans
  else return USAGE;
}

function rank(change, room, nicks) {
  if (!nicks.length) return USAGE;
  if (!room) return NO_ROOM;
  setModes(room, change, nicks);
}

/** "+o" for a, b, c...: as many MODE lines as the server's MODES= allows. */
function setModes(room, change, params) {
  for (let i = 0; i < params.length; i += state.maxModes) {
    const some = params.slice(i, i + state.maxModes);
    send("MODE", room, change[0] + change[1].repeat(some.length), ...some);
  }
}

function mode(args) {
  const words = [...args];
  if (!words.length || /^[+-]/.test(words[0])) {
    if (!currentRoom()) return NO_ROOM;
    words.unshift(currentRoom());
  }
  send("MODE", ...words);
}

function loadHistory(n) {
  const count = n === undefined ? HISTORY_SHOWN : Number(n);
  const c = current();
  if (!Number.isInteger(count) || count < 1) return USAGE;
  if (!c) return "Open a conversation first.";
  if (!has("draft/chathistory")) return "This server keeps no history.";
  if (c.loading) return "Earlier lines are on their way.";
  loadEarlier(c, count);
}

/** Whether we may delete ``line`` of ``c``: our own message, or any in a room we run. */
function canDelete(c, line) {
  if (!has("draft/message-redaction") || !line.msgid || line.redacted) return false;
  if (!["message", "action", "notice"].includes(line.kind)) return false;
  return line.own || (c.isRoom && /[~&@]/.test(c.members.get(fold(state.nick))?.prefix || ""));
}

/** Ask the server to delete ``line`` of ``c`` (REDACT); it answers with REDACT, or FAIL. */
function deleteLine(c, line) {
  if (!canDelete(c, line)) return "That message cannot be deleted.";
  send("REDACT", c.name, line.msgid);
}

/** /delete: our last message in the conversation shown. */
function deleteLast() {
  const c = current();
  if (!c) return "Open a conversation first.";
  if (!has("draft/message-redaction")) return "This server cannot delete messages.";
  const line = [...c.lines].reverse().find((l) => l.own && l.msgid && !l.redacted);
  if (!line) return "You have no message here to delete.";
  return deleteLine(c, line);
}

function closeNamed(name) {
  const c = name ? conv(name, false) : current();
  if (!c) return name ? `No conversation with ${name} is open.` : "Nothing to close.";
  if (c.isRoom && c.joined && connected()) send("PART", c.name, "Leaving");
  else closeConv(c);
}

function loadIgnores() {
  try {
    const kept = JSON.parse(localStorage.getItem(IGNORES_KEY) || "[]");
    return Array.isArray(kept) ? kept.filter((m) => typeof m === "string" && fullMask(m)) : [];
  } catch {
    return []; // (no storage, or something else in it)
  }
}

function saveIgnores() {
  try {
    localStorage.setItem(IGNORES_KEY, JSON.stringify(state.ignores));
  } catch {
    note(null, "The ignore list cannot be kept for next time here.", "error");
  }
}

function ignore(mask) {
  if (!mask) {
    const list = state.ignores.join(", ");
    note(null, list ? `Ignoring: ${list}` : "You ignore no one.");
    return;
  }
  const full = fullMask(mask);
  if (!full) return `Not a mask: ${mask}. Give an alias, or alias!user@host (* ? wildcards).`;
  if (!state.ignores.some((m) => fold(m) === fold(full))) {
    state.ignores.push(full);
    saveIgnores();
  }
  note(null, `Ignoring ${full}: their messages are not shown.`);
}

function unignore(mask) {
  const full = fold(fullMask(mask) || mask);
  const kept = state.ignores.filter((m) => fold(m) !== full);
  if (kept.length === state.ignores.length) return `${mask} is not ignored.`;
  state.ignores = kept;
  saveIgnores();
  note(null, `No longer ignoring ${mask}.`);
}

function reconnect() {
  note(null, "Reconnecting…", "event");
  clearTimeout(state.retryTimer);
  state.backoff = BACKOFF_FIRST;
  hangUp(connect);
}

/** /quit: gone from the server, and back to the sign-in form, to sign in again. */
function signOut(reason) {
  if (reason) send("QUIT", reason);
  else send("QUIT");
  state.signedIn = false;
  hangUp();
  state.convs = new Map();
  state.selected = null;
  renderAll();
  showSignIn("You have signed out.", false);
}

function joinRoom(room, key) {
  const name = isChannel(room, state.chantypes) ? room : `#${room}`;
  const existing = conv(name, false);
  if (existing?.joined) {
    select(existing.name);
    return;
  }
  conv(name).wantSelect = true;
  if (key) send("JOIN", name, key);
  else send("JOIN", name);
}

function openDirect(nick) {
  if (fold(nick) === fold(state.nick)) return;
  const c = conv(nick);
  if (!c.lines.length) fetchMissed(c);
  select(c.name);
}

function closeConv(c) {
  state.convs.delete(fold(c.name));
  if (!c.isRoom && connected()) watch([c.name], "-");
  if (state.selected !== fold(c.name)) {
    renderTargets();
    return;
  }
  state.selected = null;
  select(firstConv());
}

function firstConv() {
  const rooms = [...state.convs.values()].sort(byName);
  return rooms.length ? rooms[0].name : null;
}

// -- the page ------------------------------------------------------------------------------------

function byName(a, b) {
  return a.isRoom === b.isRoom ? fold(a.name).localeCompare(fold(b.name)) : a.isRoom ? -1 : 1;
}

function showSignIn(error, problem = true) {
  clearTimeout(state.retryTimer);
  $("chat-view").hidden = true;
  $("signin-view").hidden = false;
  $("signin-error").textContent = error || "";
  $("signin-error").classList.toggle("hint", !problem);
  $("signin").querySelector("button").disabled = false;
  $("alias").focus();
}

function showChat() {
  if (!$("chat-view").hidden) return;
  $("signin-view").hidden = true;
  $("chat-view").hidden = false;
  $("input").focus();
}

function setStatus(text, problem = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("problem", problem);
}

function select(name) {
  closeMenu(false);
  if (state.replyTo && fold(state.replyTo.conv.name) !== fold(name || "")) setReplyTo(null);
  state.selected = name ? fold(name) : null;
  const c = state.convs.get(state.selected);
  if (c) {
    // The divider goes above what had not been read: from the read marker, or the count.
    const news = c.lines.filter(isNews);
    const first = c.unread ? news[news.length - c.unread] : null;
    c.newFrom = c.readAt || (first ? new Date(Date.parse(first.time) - 1).toISOString() : null);
    c.unread = 0;
    c.mentions = 0;
  }
  document.body.classList.remove("show-rooms", "show-members");
  $("toggle-rooms").setAttribute("aria-expanded", "false");
  $("toggle-members").setAttribute("aria-expanded", "false");
  renderAll();
  scrollToEnd();
  if (c) fillView();
  markRead(c);
}

/** After a change to ``c``: redraw what shows it, keeping the reader at the end if they
 *  were there. */
function refresh(c, appended) {
  const log = $("log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  renderTargets();
  if (fold(c.name) !== state.selected) return;
  renderLog();
  renderMembers();
  if (appended && atEnd) scrollToEnd();
  markRead(c);
}

function renderAll() {
  renderTargets();
  renderHeading();
  renderLog();
  renderMembers();
}

function renderTargets() {
  const rooms = $("rooms");
  const dms = $("dms");
  rooms.replaceChildren();
  dms.replaceChildren();
  let unread = 0;
  for (const c of [...state.convs.values()].sort(byName)) {
    unread += c.unread;
    (c.isRoom ? rooms : dms).append(targetItem(c));
  }
  document.title = unread ? `(${unread}) chatcli` : "chatcli";
  const badge = $("toggle-unread");
  badge.hidden = unread === 0;
  badge.textContent = String(unread);
}

function targetItem(c) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "target";
  button.dataset.name = c.name;
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = c.isRoom ? c.name : shownName(c.name);
  if (!c.isRoom && label.textContent !== c.name) label.title = c.name;
  button.append(label);
  const shown = label.textContent;
  let description = c.isRoom || shown === c.name ? c.name : `${shown} (${c.name})`;
  if (c.unread) {
    const badge = document.createElement("span");
    badge.className = c.mentions ? "badge mention" : "badge";
    badge.textContent = c.mentions ? `${c.unread} (@${c.mentions})` : String(c.unread);
    button.append(badge);
    description += `, ${c.unread} unread` + (c.mentions ? `, ${c.mentions} for you` : "");
  }
  button.setAttribute("aria-label", description);
  if (fold(c.name) === state.selected) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => select(c.name));
  item.append(button);
  return item;
}

function renderHeading() {
  const c = state.convs.get(state.selected);
  $("room-name").textContent = c ? c.name : "";
  $("room-topic").textContent = c?.topic ? plainText(c.topic) : "";
  $("log").setAttribute("aria-label", c ? `Messages in ${c.name}` : "Messages");
}

const lineNodes = new WeakMap(); // a line -> its <li>, made once (again when it changes)
const beginning = marker("The beginning of the room's history.");
const divider = marker("New since you last read");
divider.classList.add("divider");

/** Show the selected conversation's lines. Only what is new is added, and only what went
 *  is removed: a screen reader reads out what is added to a role="log", so the log must
 *  never be rebuilt whole for one more line. */
function renderLog() {
  const c = state.convs.get(state.selected);
  const log = $("log");
  const wanted = (c?.lines || []).map(nodeOf);
  if (c?.newFrom) {
    const at = c.lines.findIndex((l) => isNews(l) && l.time > c.newFrom);
    if (at >= 0) wanted.splice(at, 0, divider);
  }
  if (c?.isRoom && c.complete) wanted.unshift(beginning);
  const keep = new Set(wanted);
  for (const child of [...log.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((node, i) => {
    if (log.children[i] !== node) log.insertBefore(node, log.children[i] || null);
  });
}

function nodeOf(line) {
  let node = lineNodes.get(line);
  if (!node) {
    node = lineItem(line);
    lineNodes.set(line, node);
  }
  return node;
}

function marker(text) {
  const item = document.createElement("li");
  item.className = "line event";
  item.textContent = text;
  return item;
}

/** ``line`` changed (deleted, reacted to, its sender's name or colour): drawn again if it
 *  is shown, else when it next is. */
function redraw(line) {
  const old = lineNodes.get(line);
  if (!old) return;
  lineNodes.delete(line);
  if (!old.isConnected) return;
  const focused = old.contains(document.activeElement) ? document.activeElement : null;
  if (state.menu?.line === line) closeMenu(false);
  const fresh = nodeOf(line);
  old.replaceWith(fresh);
  // The same control keeps the focus (a reaction just pressed, say).
  const again = focused?.dataset.control
    ? fresh.querySelector(`[data-control="${CSS.escape(focused.dataset.control)}"]`)
    : null;
  if (again) again.focus();
  else if (focused) fresh.focus();
}

/** Only the reactions under ``line`` drawn again: a screen reader reads out what is added
 *  to the log, and should hear "👍 2", not the whole message again. */
function redrawReactions(line) {
  const node = lineNodes.get(line);
  if (!node?.isConnected) {
    lineNodes.delete(line); // (drawn afresh when next shown)
    return;
  }
  const control = node.contains(document.activeElement)
    ? document.activeElement.dataset.control
    : null;
  node.querySelector(".reactions")?.remove();
  if (line.reactions.size) {
    node.insertBefore(reactionsNode(current(), line), node.querySelector(".more"));
  }
  const again = control && node.querySelector(`[data-control="${CSS.escape(control)}"]`);
  if (again) again.focus();
  else if (control?.startsWith("reaction:")) node.focus();
}

/** Who said a line: their display name (their alias on hover), colour and avatar. */
function nickNode(line) {
  const { colour, avatar, status } = metaOf(line.nick);
  const who = document.createElement("span");
  who.className = "nick";
  const name = shownName(line.nick);
  who.textContent = line.kind === "action" ? `* ${name}` : name;
  const hover = name !== line.nick ? [line.nick] : [];
  if (status) hover.push(status);
  if (hover.length) who.title = hover.join(" — ");
  if (colour) who.style.color = colour; // (checked: a hex colour, nothing else)
  if (!avatar) return [who];
  const picture = document.createElement("img");
  picture.className = "avatar";
  picture.alt = "";
  picture.width = 18;
  picture.height = 18;
  picture.loading = "lazy";
  picture.decoding = "async";
  picture.referrerPolicy = "no-referrer";
  picture.addEventListener("error", () => picture.remove());
  picture.src = avatar; // (checked: an http or https address)
  return [picture, who];
}

/** A message's first words, for a quote. */
const snippet = (text) => {
  const plain = plainText(text).replace(/\s+/g, " ").trim();
  return plain.length > 80 ? `${plain.slice(0, 79)}…` : plain;
};

function lineItem(line) {
  const c = current();
  const item = document.createElement("li");
  item.className = `line ${line.kind}`;
  if (line.msgid) item.dataset.msgid = line.msgid;
  item.tabIndex = -1; // (a reply's quote brings the focus here)
  if (line.reply) item.append(quoteNode(c, line.reply));
  const time = document.createElement("time");
  time.dateTime = line.time;
  const clock = { hour: "2-digit", minute: "2-digit" };
  time.textContent = new Date(line.time).toLocaleTimeString([], clock);
  item.append(time, " ");
  if (line.nick) item.append(...nickNode(line), " ");
  const text = document.createElement("span");
  text.className = "text";
  if (line.redacted) {
    item.classList.add("redacted");
    text.textContent = "message deleted";
  } else {
    text.textContent = plainText(line.text);
    if (line.text.includes("\n")) item.classList.add("multiline");
  }
  if (line.kind === "message" && !line.redacted && mentions(line.text, state.nick)) {
    item.classList.add("mention");
  }
  item.append(text);
  if (line.reactions?.size) item.append(reactionsNode(c, line));
  if (c && hasActions(c, line)) item.append(menuButton(c, line));
  return item;
}

/** The quote of the message a reply answers: its sender and first words; pressed, the
 *  log goes to it (if it is shown). */
function quoteNode(c, msgid) {
  const original = lineById(c, msgid);
  const quote = document.createElement("button");
  quote.type = "button";
  quote.className = "quote";
  quote.dataset.control = "quote";
  if (!original) {
    quote.textContent = "↪ a message not shown here";
    quote.disabled = true;
    return quote;
  }
  const what = original.redacted ? "message deleted" : snippet(original.text);
  quote.textContent = `↪ ${shownName(original.nick)}: ${what}`;
  quote.setAttribute("aria-label", `In reply to ${original.nick}: ${what}. Go to it.`);
  quote.addEventListener("click", () => goTo(original));
  return quote;
}

/** Scroll to a line and show which it is for a moment. */
function goTo(line) {
  const node = lineNodes.get(line);
  if (!node?.isConnected) return;
  node.scrollIntoView({ block: "center" });
  node.classList.add("flash");
  node.focus({ preventScroll: true });
  setTimeout(() => node.classList.remove("flash"), 1500);
}

/** The reactions under a message, counted: each a button that adds or takes back ours. */
function reactionsNode(c, line) {
  const box = document.createElement("div");
  box.className = "reactions";
  for (const [reaction, who] of line.reactions) {
    const mine = who.has(fold(state.nick));
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reaction";
    button.dataset.control = `reaction:${reaction}`;
    button.setAttribute("aria-pressed", String(mine));
    button.textContent = `${reaction} ${who.size}`;
    const names = [...who.values()].map(shownName).join(", ");
    button.title = names;
    button.setAttribute(
      "aria-label",
      `${reaction} ${who.size}: ${names}. ` + (mine ? "Take yours back." : "React so too."),
    );
    button.disabled = !c || !has("message-tags");
    button.addEventListener("click", () => toggleReaction(c, line, reaction));
    box.append(button);
  }
  return box;
}

/** Whether a line has a menu: a message the server keeps, with something to do to it. */
function hasActions(c, line) {
  if (!line.msgid || line.redacted || !["message", "action", "notice"].includes(line.kind)) {
    return false;
  }
  return has("message-tags") || canDelete(c, line);
}

function menuButton(c, line) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "more";
  button.dataset.control = "more";
  button.textContent = "⋯";
  button.setAttribute("aria-label", `Actions for the message from ${line.nick}`);
  button.setAttribute("aria-haspopup", "menu");
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    if (state.menu?.line === line) closeMenu(true);
    else openMenu(c, line, button);
  });
  return button;
}

/** A message's menu: reply, react (then which reaction), delete. Arrow keys move in it;
 *  Escape closes it, back to its button. */
function openMenu(c, line, button) {
  closeMenu(false);
  const menu = document.createElement("div");
  menu.className = "menu";
  menu.setAttribute("role", "menu");
  menu.setAttribute("aria-label", `Actions for the message from ${line.nick}`);
  const item = (label, action, aria) => {
    const entry = document.createElement("button");
    entry.type = "button";
    entry.setAttribute("role", "menuitem");
    entry.textContent = label;
    if (aria) entry.setAttribute("aria-label", aria);
    entry.addEventListener("click", (event) => {
      event.stopPropagation();
      action();
    });
    return entry;
  };
  const actions = () => {
    const entries = [];
    if (has("message-tags")) {
      entries.push(
        item("↩ Reply", () => {
          closeMenu(false);
          setReplyTo({ conv: c, line });
        }),
        item("☺ React", () => {
          menu.replaceChildren(...reactions());
          menu.querySelector("button")?.focus();
        }),
      );
    }
    if (canDelete(c, line)) {
      entries.push(
        item("🗑 Delete", () => {
          closeMenu(true);
          const problem = deleteLine(c, line);
          if (problem) note(null, problem, "error");
        }),
      );
    }
    return entries;
  };
  const reactions = () =>
    REACTIONS.map((r) =>
      item(
        r,
        () => {
          closeMenu(true);
          if (!line.reactions.get(r)?.has(fold(state.nick))) toggleReaction(c, line, r);
        },
        `React with ${r}`,
      ),
    );
  menu.append(...actions());
  menu.addEventListener("keydown", (event) => {
    const entries = [...menu.querySelectorAll("button")];
    const at = entries.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu(true);
    } else if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      event.preventDefault();
      entries[(at + 1) % entries.length]?.focus();
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      event.preventDefault();
      entries[(at - 1 + entries.length) % entries.length]?.focus();
    } else if (event.key === "Tab") {
      closeMenu(false);
    }
  });
  button.setAttribute("aria-expanded", "true");
  button.after(menu);
  state.menu = { line, node: menu, button };
  menu.querySelector("button")?.focus();
}

function closeMenu(refocus) {
  const open = state.menu;
  if (!open) return;
  state.menu = null;
  open.node.remove();
  open.button.setAttribute("aria-expanded", "false");
  if (refocus && open.button.isConnected) open.button.focus();
}

/** Add our ``reaction`` to a message, or take it back if it is there (TAGMSG). */
function toggleReaction(c, line, reaction) {
  if (!c || !line.msgid || !has("message-tags")) return;
  const mine = line.reactions.get(reaction)?.has(fold(state.nick));
  const tags = { [mine ? "+draft/unreact" : "+draft/react"]: reaction, "+draft/reply": line.msgid };
  if (!sendLine(buildTagged(tags, "TAGMSG", c.name))) {
    note(null, "Not connected: the reaction was not sent.", "error");
    return;
  }
  if (!has("echo-message")) {
    onTagmsg({ tags, source: state.nick, nick: state.nick, command: "TAGMSG", params: [c.name] });
  }
}

/** The message the next one answers (null: none), shown above the input. */
function setReplyTo(to) {
  state.replyTo = to;
  const bar = $("reply-bar");
  bar.hidden = !to;
  if (!to) return;
  const what = snippet(to.line.text);
  $("reply-text").textContent = `Replying to ${shownName(to.line.nick)}: ${what}`;
  $("input").focus();
}

function renderMembers() {
  const c = state.convs.get(state.selected);
  const list = $("members");
  const members = c?.isRoom ? [...c.members.values()] : [];
  members.sort((a, b) => fold(a.nick).localeCompare(fold(b.nick)));
  list.replaceChildren(...members.map(memberItem));
  $("members-heading").textContent = c?.isRoom ? `Members (${members.length})` : "Members";
}

function memberItem(member) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = member.away ? "target away" : "target";
  const { name, colour, status } = metaOf(member.nick);
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = member.prefix + (name || member.nick);
  if (colour) label.style.color = colour; // (checked: a hex colour, nothing else)
  button.append(label);
  if (name && name !== member.nick) {
    const alias = document.createElement("span");
    alias.className = "alias";
    alias.textContent = member.nick;
    button.append(alias);
  }
  if (status) button.title = status;
  button.setAttribute(
    "aria-label",
    `Message ${member.nick}` +
      (name && name !== member.nick ? ` (${name})` : "") +
      " directly" +
      (member.away ? " (away)" : ""),
  );
  button.addEventListener("click", () => openDirect(member.nick));
  item.append(button);
  return item;
}

/** The input grows with its lines, up to a few (then it scrolls). */
function fitInput() {
  const input = $("input");
  input.rows = Math.min(8, Math.max(1, input.value.split("\n").length));
}

function scrollToEnd() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

/** A log shorter than its box cannot be scrolled to the top: fetch earlier lines until it
 *  fills (or there are none). */
function fillView() {
  const c = state.convs.get(state.selected);
  const log = $("log");
  if (c && log.scrollHeight <= log.clientHeight) fetchEarlier(c);
}

/** Scrolled to the top: ask for earlier lines (onBatch keeps the reader's place). */
function onScroll() {
  const c = state.convs.get(state.selected);
  if (performance.now() < state.quietUntil) return; // (/history has just shown its lines)
  if (c && $("log").scrollTop <= 40) fetchEarlier(c);
}

// -- wiring --------------------------------------------------------------------------------------

function askForNotifications() {
  // Browsers only ask on a user gesture: this runs from the sign-in button.
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
}

function toggle(which, button) {
  const open = !document.body.classList.contains(which);
  document.body.classList.remove("show-rooms", "show-members");
  document.body.classList.toggle(which, open);
  $("toggle-rooms").setAttribute("aria-expanded", String(which === "show-rooms" && open));
  $("toggle-members").setAttribute("aria-expanded", String(which === "show-members" && open));
  if (open) document.querySelector(`#${button.getAttribute("aria-controls")} .target`)?.focus();
}

/** Alt+Up and Alt+Down: the conversation above or below the one shown, as listed. */
function step(by) {
  const names = [...state.convs.values()].sort(byName).map((c) => c.name);
  if (!names.length) return;
  const at = names.findIndex((name) => fold(name) === state.selected);
  select(names[(at + by + names.length) % names.length]);
}

function start() {
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const alias = $("alias").value.trim();
    if (!/^[^\s,*?!@#&:][^\s,*?!@:]*$/.test(alias)) {
      $("signin-error").classList.remove("hint");
      $("signin-error").textContent = "An alias is one word, without , * ? ! @ : or a leading #.";
      return;
    }
    askForNotifications();
    state.convs = new Map(); // (a new sign-in starts afresh, whoever was here before)
    state.selected = null;
    state.nick = alias;
    state.account = alias;
    state.password = $("password").value;
    state.create = $("create").checked && state.password !== "";
    $("signin").querySelector("button").disabled = true;
    $("signin-error").textContent = "";
    connect();
  });
  $("send").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("input");
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    fitInput();
    submitInput(text);
  });
  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("join-name").value.trim();
    if (!name) return;
    $("join-name").value = "";
    joinRoom(name);
  });
  $("toggle-rooms").addEventListener("click", (e) => toggle("show-rooms", e.currentTarget));
  $("toggle-members").addEventListener("click", (e) => toggle("show-members", e.currentTarget));
  $("log").addEventListener("scroll", onScroll, { passive: true });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") document.body.classList.remove("show-rooms", "show-members");
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      step(event.key === "ArrowUp" ? -1 : 1);
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    const c = state.convs.get(state.selected);
    if (c?.unread) {
      c.unread = 0;
      c.mentions = 0;
      renderTargets();
    }
    markRead(c);
  });
  // Enter sends; Shift+Enter starts a new line of the same message.
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("send").requestSubmit();
    } else if (event.key === "Escape" && state.replyTo) {
      event.preventDefault();
      setReplyTo(null);
    }
  });
  $("input").addEventListener("input", fitInput);
  $("profile-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (connected()) saveProfile();
    else note(null, "Not connected: try again once back.", "error");
  });
  $("profile-colour").addEventListener("input", () => ($("profile-no-colour").checked = false));
  $("reply-cancel").addEventListener("click", () => {
    setReplyTo(null);
    $("input").focus();
  });
  document.addEventListener("click", (event) => {
    if (state.menu && !state.menu.node.contains(event.target)) closeMenu(false);
  });
  $("alias").focus();
}

start();
