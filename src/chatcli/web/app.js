// The browser client: IRC over a WebSocket back to the server that served this page.
//
// Everything that comes from the network (messages, nicks, topics, room names) reaches the
// page as text only: through textContent and DOM nodes, never as markup.

import {
  actionText,
  buildLine,
  duration,
  fold,
  fullMask,
  isChannel,
  maskMatches,
  mentions,
  modeChanges,
  parseLine,
  plainText,
  saslPlain,
  setCasemapping,
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
];
const HISTORY_PAGE = 50; // lines asked for at a time (CHATHISTORY limit)
const MAX_LINES = 2000; // kept per conversation; older ones are dropped from the page
const BACKOFF_FIRST = 1000; // ms before the first reconnection, doubled up to BACKOFF_MAX
const BACKOFF_MAX = 30000;
const HISTORY_SHOWN = 20; // lines /history loads without a number
const IGNORES_KEY = "chatcli.ignores"; // where the ignore list is kept (localStorage)

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
};

/** A room or a direct conversation, and everything the page shows of it. */
function newConv(name) {
  return {
    name,
    isRoom: isChannel(name, state.chantypes),
    lines: [], // {msgid, time, nick, text, kind}, oldest first
    msgids: new Set(), // seen already: history and live lines never show twice
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
  };
}

function conv(name, create = true) {
  const key = fold(name);
  let found = state.convs.get(key);
  if (!found && create) {
    found = newConv(name);
    state.convs.set(key, found);
  }
  return found;
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
  903: () => send("CAP", "END"), // logged in
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
  JOIN: onJoin,
  PART: (m) => onLeave(m.nick, m.params[0], "left"),
  KICK: onKick,
  QUIT: onQuit,
  NICK: onNick,
  TOPIC: (m) => setTopic(m.params[0], m.params[1] || "", m.nick),
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
  // Back after a lost connection: into the same rooms, and what was missed in the
  // conversations (the rooms' comes when they are joined again).
  const rooms = [...state.convs.values()].filter((c) => c.isRoom).map((c) => c.name);
  if (rooms.length) send("JOIN", rooms.join(","));
  for (const c of state.convs.values()) if (!c.isRoom) fetchMissed(c);
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
    state.batches.set(ref.slice(1), { type: m.params[1], target: m.params[2], lines: [] });
    return;
  }
  const batch = state.batches.get(ref.slice(1));
  state.batches.delete(ref.slice(1));
  if (batch?.type === "chathistory") endHistory(batch);
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
  if (c && asked === "before") {
    prependLines(c, batch.lines.map((item) => item.line));
    if (batch.lines.length === 0) c.complete = true;
    if (reveal && batch.lines.length === 0) note(c.name, "There is nothing earlier.");
  } else {
    for (const { into, line } of batch.lines) {
      if (addLine(into, line) && !asked && !line.own) {
        noticeNew(into, line);
        if (!into.isRoom) state.lastDirect = into.name;
      }
    }
  }
  // A whole page of what was missed: there may be more after it.
  if (asked === "after" && batch.lines.length >= HISTORY_PAGE) fetchMissed(c);
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
  const fromHistory = batch?.type === "chathistory";
  if (!m.source.includes("!") && (!state.registered || m.source === state.server)) {
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
  };
  if (fromHistory) {
    batch.lines.push({ into: c, line: { ...line, own } }); // placed when it ends (onBatch)
    return;
  }
  if (!addLine(c, line)) return;
  if (!own) noticeNew(c, line);
  if (!own && !c.isRoom) state.lastDirect = m.nick;
  refresh(c, true);
}

const ignored = (source) => state.ignores.some((mask) => maskMatches(mask, source));

/** Add ``line`` at the end of ``c``, or after the last line not later than it (lines
 *  fetched after a reconnection may come after newer live ones). False when it was there
 *  already (the same msgid). */
function addLine(c, line) {
  if (line.msgid) {
    if (c.msgids.has(line.msgid)) return false;
    c.msgids.add(line.msgid);
  }
  let at = c.lines.length;
  while (at > 0 && c.lines[at - 1].time > line.time) at -= 1;
  c.lines.splice(at, 0, line);
  if (c.lines.length > MAX_LINES) {
    // The oldest go, and are forgotten: scrolling back up fetches them again.
    for (const old of c.lines.splice(0, c.lines.length - MAX_LINES)) c.msgids.delete(old.msgid);
    c.complete = false;
  }
  return true;
}

/** Earlier lines, a page of them in order: before everything there is (timestamps may be
 *  equal, so they are not sorted by them). */
function prependLines(c, lines) {
  const fresh = lines.filter((l) => !l.msgid || !c.msgids.has(l.msgid));
  for (const l of fresh) if (l.msgid) c.msgids.add(l.msgid);
  c.lines.unshift(...fresh);
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

function onFail(m) {
  const [command, code] = m.params;
  if (command === "CHATHISTORY") {
    for (const c of state.convs.values()) c.loading = false;
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
  c.msgids = new Set();
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
  if (own) {
    state.nick = after;
    $("me").textContent = after;
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
  if (text.startsWith("/") && !text.startsWith("//")) {
    runCommand(text.slice(1));
    return;
  }
  const c = current();
  if (!c) return;
  say(c.name, text.startsWith("//") ? text.slice(1) : text);
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
  note(null, [...lines, "Alt+Up and Alt+Down change conversation; //text sends /text."], "detail");
}

/** Send a message; without echo-message the server does not send it back, so show it. */
function say(target, text) {
  if (!send("PRIVMSG", target, text)) {
    note(null, "Not connected: the message was not sent.", "error");
    return;
  }
  if (has("echo-message")) return;
  const source = `${state.nick}!me@here`;
  onMessage({ tags: {}, source, nick: state.nick, command: "PRIVMSG", params: [target, text] });
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
  if (masks.length) setModes(room, change, masks.map((m) => (/[!@]/.test(m) ? m : `${m}!*@*`)));
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
  state.selected = name ? fold(name) : null;
  const c = state.convs.get(state.selected);
  if (c) {
    c.unread = 0;
    c.mentions = 0;
  }
  document.body.classList.remove("show-rooms", "show-members");
  $("toggle-rooms").setAttribute("aria-expanded", "false");
  $("toggle-members").setAttribute("aria-expanded", "false");
  renderAll();
  scrollToEnd();
  if (c) fillView();
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
  label.textContent = c.name;
  button.append(label);
  let description = c.name;
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

const lineNodes = new WeakMap(); // a line -> its <li>, made once
const beginning = marker("The beginning of the room's history.");

/** Show the selected conversation's lines. Only what is new is added, and only what went
 *  is removed: a screen reader reads out what is added to a role="log", so the log must
 *  never be rebuilt whole for one more line. */
function renderLog() {
  const c = state.convs.get(state.selected);
  const log = $("log");
  const wanted = (c?.lines || []).map(nodeOf);
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

function lineItem(line) {
  const item = document.createElement("li");
  item.className = `line ${line.kind}`;
  if (line.msgid) item.dataset.msgid = line.msgid;
  const time = document.createElement("time");
  time.dateTime = line.time;
  const clock = { hour: "2-digit", minute: "2-digit" };
  time.textContent = new Date(line.time).toLocaleTimeString([], clock);
  item.append(time, " ");
  if (line.nick) {
    const who = document.createElement("span");
    who.className = "nick";
    who.textContent = line.kind === "action" ? `* ${line.nick}` : line.nick;
    item.append(who, " ");
  }
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = plainText(line.text);
  if (line.kind === "message" && mentions(line.text, state.nick)) item.classList.add("mention");
  item.append(text);
  return item;
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
  button.textContent = member.prefix + member.nick;
  button.setAttribute(
    "aria-label",
    `Message ${member.nick} directly` + (member.away ? " (away)" : ""),
  );
  button.addEventListener("click", () => openDirect(member.nick));
  item.append(button);
  return item;
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
  });
  $("alias").focus();
}

start();
