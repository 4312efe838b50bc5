// IRC lines in and out: parsing (with IRCv3 message tags), formatting codes, names.
// Nothing here touches the page; app.js does.

const TAG_ESCAPES = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

/** A tag value as the sender meant it (IRCv3 message-tags escaping undone). */
function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, c) => (c in TAG_ESCAPES ? TAG_ESCAPES[c] : c));
}

/**
 * One IRC line -> {tags, source, nick, command, params}. Lenient: a line the server
 * should never send still parses into something, so one odd line cannot stop the client.
 */
export function parseLine(line) {
  let rest = line;
  const tags = {};
  if (rest.startsWith("@")) {
    const end = rest.indexOf(" ");
    const raw = end < 0 ? rest.slice(1) : rest.slice(1, end);
    for (const part of raw.split(";")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      if (eq < 0) tags[part] = "";
      else tags[part.slice(0, eq)] = unescapeTag(part.slice(eq + 1));
    }
    rest = end < 0 ? "" : rest.slice(end + 1).trimStart();
  }
  let source = "";
  if (rest.startsWith(":")) {
    const end = rest.indexOf(" ");
    source = end < 0 ? rest.slice(1) : rest.slice(1, end);
    rest = end < 0 ? "" : rest.slice(end + 1).trimStart();
  }
  const params = [];
  while (rest) {
    if (rest.startsWith(":")) {
      params.push(rest.slice(1));
      break;
    }
    const end = rest.indexOf(" ");
    if (end < 0) {
      params.push(rest);
      break;
    }
    params.push(rest.slice(0, end));
    rest = rest.slice(end + 1).trimStart();
  }
  const command = (params.shift() || "").toUpperCase();
  return { tags, source, nick: source.split("!")[0], command, params };
}

/**
 * A line to send. The last parameter becomes a trailing one when it must (empty, with a
 * space, or starting with ":"); CR, LF and NUL are removed so that user input can never
 * smuggle a second command into the line.
 */
export function buildLine(command, ...params) {
  const clean = params.map((p) => String(p).replace(/[\r\n\0]/g, " "));
  const last = clean.length - 1;
  const trailing = last >= 0 && /^$|^:| /.test(clean[last]);
  if (trailing) {
    clean[last] = ":" + clean[last];
  }
  return [command, ...clean].join(" ");
}

// mIRC-style formatting: bold, italic, underline, strike, monospace, reverse, reset, and
// colours with their optional numbers (\x03) or hex values (\x04).
const COLOUR = /\x03(?:\d{1,2}(?:,\d{1,2})?)?/g;
const HEX_COLOUR = /\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?/g;
const STYLE = /[\x02\x0f\x11\x16\x1d\x1e\x1f]/g;
// Other control characters (but tab and newline) are shown as their Unicode pictures.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;
const picture = (c) => String.fromCodePoint(c === "\x7f" ? 0x2421 : 0x2400 + c.charCodeAt(0));

/** Text without IRC formatting codes; other control characters become visible marks. */
export function plainText(text) {
  const bare = text.replace(COLOUR, "").replace(HEX_COLOUR, "").replace(STYLE, "");
  return bare.replace(CONTROL, picture);
}

/** Whether a target names a room rather than a person. */
export function isChannel(name, types = "#&") {
  return name.length > 0 && types.includes(name[0]);
}

let rfc1459 = true;

/** The server's CASEMAPPING (from its ISUPPORT): "ascii", or "rfc1459" (the default). */
export function setCasemapping(name) {
  rfc1459 = name !== "ascii";
}

/** A name as the server compares it: names that differ only in case are the same name. */
export function fold(name) {
  const lower = name.toLowerCase();
  if (!rfc1459) return lower;
  return lower.replace(/[[\]\\~]/g, (c) => ({ "[": "{", "]": "}", "\\": "|", "~": "^" })[c]);
}

/** Whether ``text`` names ``nick`` as a word of its own (a mention). */
export function mentions(text, nick) {
  if (!nick) return false;
  const words = fold(plainText(text)).split(/[^\p{L}\p{N}_\-[\]\\`^{}|]+/u);
  return words.includes(fold(nick));
}

/** SASL PLAIN's payload: base64 of "account NUL account NUL password", in UTF-8. */
export function saslPlain(account, password) {
  const bytes = new TextEncoder().encode(`${account}\0${account}\0${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** "\x01ACTION waves\x01" -> "waves"; anything else -> null. */
export function actionText(text) {
  const match = /^\x01ACTION ?(.*?)\x01?$/s.exec(text);
  return match ? match[1] : null;
}

/** An ignore mask in full, "nick!user@host" (a bare nick means "nick!*@*"), or null when
 *  ``mask`` is not one. */
export function fullMask(mask) {
  const full = /[!@]/.test(mask) ? mask : `${mask}!*@*`;
  return /^[^\s,!@]+![^\s,!@]+@[^\s,!@]+$/.test(full) ? full : null;
}

const patterns = new Map(); // mask -> its RegExp (maskMatches): made once, not per message

/** Whether the sender ``source`` ("nick!user@host") matches ``mask``, with * and ? as
 *  wildcards, names compared as the server compares them. */
export function maskMatches(mask, source) {
  let pattern = patterns.get(mask);
  if (pattern === undefined) {
    const glob = (c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/, "\\$&"));
    pattern = new RegExp(`^${[...fold(fullMask(mask) || mask)].map(glob).join("")}$`, "su");
    if (patterns.size >= 1000) patterns.clear(); // (the user's own masks: few)
    patterns.set(mask, pattern);
  }
  return pattern.test(fold(source.includes("!") ? source : `${source}!@`));
}

/**
 * The changes a MODE line makes: [{add, mode, param}]. ``takes`` says which modes have a
 * parameter: ``always`` (lists, keys, member ranks) and ``whenSet`` (such as a limit).
 */
export function modeChanges(modes, params, takes) {
  const changes = [];
  let add = true;
  let next = 0;
  for (const mode of modes) {
    if (mode === "+" || mode === "-") {
      add = mode === "+";
      continue;
    }
    const hasParam = takes.always.includes(mode) || (add && takes.whenSet.includes(mode));
    changes.push({ add, mode, param: hasParam ? params[next++] : undefined });
  }
  return changes;
}

/** A number of seconds as a person would say it: "45s", "3m", "2h 5m", "4d 1h". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const TAG_SPECIALS = { ";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n" };

/** A tag value escaped for the wire (IRCv3 message-tags). */
export function escapeTag(value) {
  return String(value).replace(/[; \\\r\n]/g, (c) => TAG_SPECIALS[c]);
}

/** A line with client tags in front: ``tags`` an object of name -> value ("" for none).
 *  Names that are not tag names are left out, so that no input can break the line. */
export function buildTagged(tags, command, ...params) {
  const parts = Object.entries(tags)
    .filter(([name]) => /^\+?[A-Za-z0-9./-]+$/.test(name))
    .map(([name, value]) => (value === "" ? name : `${name}=${escapeTag(value)}`));
  const line = buildLine(command, ...params);
  return parts.length ? `@${parts.join(";")} ${line}` : line;
}

/** The number of bytes ``text`` takes in UTF-8. */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/**
 * A line of text cut into pieces of at most ``max`` bytes of UTF-8, between words where it
 * can (the space stays at the end of a piece), never inside a character. Joined again
 * without separators, the pieces are the line.
 */
export function splitBytes(text, max) {
  const pieces = [];
  let rest = text;
  while (utf8Length(rest) > max) {
    let cut = 0;
    let bytes = 0;
    for (const char of rest) {
      const size = utf8Length(char);
      if (bytes + size > max) break;
      bytes += size;
      cut += char.length;
    }
    const space = rest.lastIndexOf(" ", cut - 1);
    if (space > 0 && space + 1 > cut / 2) cut = space + 1;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  pieces.push(rest);
  return pieces;
}

/** A capability's value as its tokens: "max-bytes=4096,max-lines=24" -> {max-bytes: "4096",
 *  max-lines: "24"}. */
export function capTokens(value) {
  const tokens = {};
  for (const item of (value || "").split(",")) {
    const eq = item.indexOf("=");
    if (item) tokens[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? "" : item.slice(eq + 1);
  }
  return tokens;
}

/** A colour from the network, if it is a plain hex colour (#rgb or #rrggbb); else null.
 *  Nothing else is ever given to the page's styles. */
export function safeColour(value) {
  return typeof value === "string" && /^#(?:[0-9a-fA-F]{3}){1,2}$/.test(value) ? value : null;
}

const MAX_URL = 2048;

/** An avatar's address from the network, if it is a web address (http or https, no
 *  user name or password in it, not too long); else null. */
export function safeImageUrl(value) {
  if (typeof value !== "string" || value.length > MAX_URL || /[\s\0-\x1f]/.test(value)) return null;
  let url;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password || !url.hostname) return null;
  return url.href;
}

/** A display name from the network as it may be shown: plain text, one line, bounded. */
export function safeDisplayName(value) {
  if (typeof value !== "string") return null;
  const text = plainText(value).replace(/\s+/g, " ").trim();
  return text ? [...text].slice(0, 64).join("") : null;
}
