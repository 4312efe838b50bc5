// The browser client: IRC over a WebSocket back to the server that served this page.
//
// Everything that comes from the network (messages, nicks, topics, room names) reaches the
// page as text only: through textContent and DOM nodes, never as markup.

import {
  actionText,
  buildLine,
  fold,
  isChannel,
  mentions,
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
  "chatcli.local/autojoin",
];
const HISTORY_PAGE = 50; // lines asked for at a time (CHATHISTORY limit)
const MAX_LINES = 2000; // kept per conversation; older ones are dropped from the page
const BACKOFF_FIRST = 1000; // ms before the first reconnection, doubled up to BACKOFF_MAX
const BACKOFF_MAX = 30000;

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
  state.caps = new Set();
  state.offered = new Map();
  state.batches = new Map();
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
    for (const c of state.convs.values()) {
      c.loading = false;
      c.joined = false;
    }
    if (state.signedIn) scheduleReconnect();
    else showSignIn("Could not connect to the server.");
  });
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
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  const line = buildLine(command, ...params);
  ws.send(state.binary ? new TextEncoder().encode(line) : line);
  return true;
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
  KICK: (m) => onLeave(m.params[1], m.params[0], `was removed by ${m.nick}`),
  QUIT: onQuit,
  NICK: onNick,
  TOPIC: (m) => setTopic(m.params[0], m.params[1] || "", m.nick),
  332: (m) => setTopic(m.params[1], m.params[2] || ""),
  331: (m) => setTopic(m.params[1], ""),
  353: onNames,
  366: (m) => {
    const c = conv(m.params[1], false);
    if (c) c.namesDone = true;
  },
  AWAY: (m) => setAway(m.nick, m.params.length > 0),
  305: () => setOwnAway(false),
  306: () => setOwnAway(true),
  REGISTER: (m) => {
    state.create = false; // the account exists now: sign in with it from here on
    note(null, `Account ${m.params[1] || state.nick} created.`);
  },
  FAIL: (m) => onFail(m),
  ERROR: (m) => setStatus(plainText(m.params[0] || "Disconnected"), true),
};

function receive(m) {
  const handler = HANDLERS[m.command];
  try {
    if (handler) handler(m);
    else if (/^[45]\d\d$/.test(m.command)) note(null, m.params.slice(1).join(" "), "error");
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
  if (state.create && state.password) send("REGISTER", "*", "*", state.password);
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
  }
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
  if (c && asked === "before") {
    prependLines(c, batch.lines.map((item) => item.line));
    if (batch.lines.length === 0) c.complete = true;
  } else {
    for (const { into, line } of batch.lines) {
      if (addLine(into, line) && !asked && !line.own) noticeNew(into, line);
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
  if (asked === "before") log.scrollTop = log.scrollHeight - fromBottom;
  else if (atEnd) scrollToEnd();
  fillView();
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
  refresh(c, true);
}

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

/** A line of the client's own (an error, a notice from the server) in ``name``'s
 *  conversation, or the one shown. */
function note(name, text, kind = "note") {
  const c = name ? conv(name) : state.convs.get(state.selected);
  if (!c) {
    setStatus(plainText(text), kind === "error");
    return;
  }
  c.lines.push({ msgid: null, time: new Date().toISOString(), nick: "", text, kind });
  refresh(c, true);
}

function onFail(m) {
  const [command, code] = m.params;
  if (command === "CHATHISTORY") {
    for (const c of state.convs.values()) c.loading = false;
    return;
  }
  if (command === "REGISTER") state.create = false;
  note(null, `${command}: ${m.params.at(-1) || code}`, "error");
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
  const last = [...c.lines].reverse().find((l) => l.msgid);
  c.loading = last ? "after" : "latest";
  if (last) send("CHATHISTORY", "AFTER", c.name, `msgid=${last.msgid}`, String(HISTORY_PAGE));
  else send("CHATHISTORY", "LATEST", c.name, "*", String(HISTORY_PAGE));
}

/** Scrolled to the top: the page before the oldest line shown. */
function fetchEarlier(c) {
  if (!has("draft/chathistory") || c.loading || c.complete) return;
  const first = c.lines.find((l) => l.msgid);
  if (!first) return;
  c.loading = "before";
  send("CHATHISTORY", "BEFORE", c.name, `msgid=${first.msgid}`, String(HISTORY_PAGE));
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

const COMMANDS = {
  join: ([room, key]) => {
    if (!room) return "Usage: /join #room";
    joinRoom(room, key);
  },
  part: ([room, ...reason]) => {
    const current = state.convs.get(state.selected);
    if (room && isChannel(room, state.chantypes)) {
      send("PART", room, reason.join(" ") || "Leaving");
    } else if (current?.isRoom) {
      send("PART", current.name, [room, ...reason].join(" ").trim() || "Leaving");
    } else if (current) {
      closeConv(current); // a direct conversation: just put away
    }
  },
  msg: ([nick, ...words]) => {
    if (!nick || !words.length) return "Usage: /msg nick text";
    say(nick, words.join(" "));
    if (!isChannel(nick, state.chantypes)) select(conv(nick).name);
  },
  query: ([nick]) => {
    if (!nick) return "Usage: /query nick";
    openDirect(nick);
  },
  me: (words) => {
    const current = state.convs.get(state.selected);
    if (!current) return "Open a room first.";
    say(current.name, `\x01ACTION ${words.join(" ")}\x01`);
  },
  nick: ([nick]) => (nick ? void send("NICK", nick) : "Usage: /nick newname"),
  topic: (words) => {
    const current = state.convs.get(state.selected);
    if (!current?.isRoom) return "Open a room first.";
    if (words.length) send("TOPIC", current.name, words.join(" "));
    else note(null, current.topic ? `Topic: ${current.topic}` : "No topic is set.");
  },
  away: (words) => (words.length ? send("AWAY", words.join(" ")) : send("AWAY")) && undefined,
  help: () =>
    "Commands: /join #room, /part, /msg nick text, /query nick, /me action, /nick name, " +
    "/topic text, /away [text]. Alt+Up and Alt+Down change conversation.",
};

function submitInput(text) {
  if (text.startsWith("/") && !text.startsWith("//")) {
    const [word, ...args] = text.slice(1).split(" ").filter(Boolean);
    const run = COMMANDS[(word || "").toLowerCase()];
    const problem = run ? run(args) : `Unknown command /${word}. Try /help.`;
    if (problem) note(null, problem, "error");
    return;
  }
  const current = state.convs.get(state.selected);
  if (!current) return;
  say(current.name, text.startsWith("//") ? text.slice(1) : text);
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

function showSignIn(error) {
  clearTimeout(state.retryTimer);
  $("chat-view").hidden = true;
  $("signin-view").hidden = false;
  $("signin-error").textContent = error || "";
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
