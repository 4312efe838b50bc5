"""The most expensive inputs we know for every command of chatcli's server, and what each
costs: server CPU per command, and the latency two other users see meanwhile.

    .venv/bin/python benchmarks/adversary.py [--quick] [--chatcli-rev REV] [--json FILE]
    .venv/bin/python benchmarks/adversary.py --compare before.json after.json

One ``chat serve`` process with a database (in a temporary directory) on 127.0.0.1; an
attacker that sends the list below, one input at a time, at its flood rate (the server's
flood control is left at its defaults); and, in a separate process, a control pair of
users exchanging direct messages. For each input: the server's CPU time (all threads,
from the kernel's per-process CPU clock, in nanoseconds) from the moment the line is sent
until a PING sent after it is answered and the server is idle again, minus what a bare
PING costs the same way; and the control pair's latencies while the input is repeated.
See benchmarks/README.md ("Adversarial inputs") for how to read the table.

Budget: no input costs more than 10 ms of server CPU, and the control pair's p99 stays
under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

HOST = "127.0.0.1"
BUDGET_CPU_MS = 10.0
BUDGET_P99_MS = 50.0
#: The server's default flood control (ServerConfig.flood_burst, flood_rate): the attacker
#: keeps within it, so that none of its commands waits in the server's fake lag.
FLOOD_BURST = 20
FLOOD_RATE = 10.0
#: Commands the server never charges to flood control.
UNLAGGED = ("PING", "PONG", "QUIT")
#: A line's body may hold 510 bytes before its CRLF.
LINE = 510
#: The client-only tags one line may carry (MAX_CLIENT_TAG_BYTES, '@' and space included).
CLIENT_TAGS = 4096
#: Direct messages a second from each of the two control users: half the flood rate. At
#: the flood rate itself, the fake lag its lines take on while the server stalls (they are
#: charged when read, all at once) would never be paid back, and would add to every later
#: message's latency.
CONTROL_RATE = 5.0
OPER_NAME, OPER_PASS = "bench", "operpass-1"
VICTIM_PASS = "victim-pass-1"
A30 = "a" * 30  # the longest nick (NICKLEN=30), all a's: the worst text for a*a*a* masks
REGEX_WHO = "*a" * 13 + "*b"
REGEX_BAN = "*a" * 8 + "!*@*b"
REGEX_MUTE = "m:" + "*a" * 8 + "*!*@*b"
FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " * 4


DEBUG = bool(os.environ.get("ADVERSARY_DEBUG"))  # print every line the attackers receive


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill(head: str, items: Iterable[str], sep: str = ",", tail: str = "") -> str:
    """``head`` followed by as many of ``items`` as fit in one line, joined by ``sep``."""
    out = head
    first = True
    for item in items:
        piece = item if first else sep + item
        if len((out + piece + tail).encode()) > LINE:
            break
        out += piece
        first = False
    return out + tail


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- the server's CPU ------------------------------------------------------------------------


class ProcCPU:
    """A process's CPU time, every thread and every thread that has ended included, in
    nanoseconds: the kernel's per-process CPU clock (``clock_getcpuclockid``), which
    /proc/PID/stat only shows in 10 ms ticks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.clock = ((~pid) << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
        try:
            time.clock_gettime_ns(self.clock)
            self.precise = True
        except OSError:
            self.precise = False

    def ns(self) -> int:
        if self.precise:
            try:
                return time.clock_gettime_ns(self.clock)
            except OSError:
                pass
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0


def proc_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def box_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- clients ---------------------------------------------------------------------------------


class Pacer:
    """The attacker's copy of the server's token bucket (a little slower, to be safe): a
    command is sent when the server will run it at once, never held by its fake lag."""

    def __init__(self, burst: int = FLOOD_BURST, rate: float = FLOOD_RATE) -> None:
        self.burst = burst - 1.0
        self.rate = rate * 0.95
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def charge(self) -> None:
        """A command sent without waiting (setup): the bucket goes into debt."""
        self._refill()
        self.tokens -= 1.0

    async def take(self) -> None:
        self._refill()
        if self.tokens < 1.0:
            await asyncio.sleep((1.0 - self.tokens) / self.rate)
            self._refill()
        self.tokens -= 1.0


@dataclass
class Capture:
    """What one client received while a command was measured."""

    lines: int = 0
    bytes: int = 0
    replies: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, command: str, params: str, prefix: str) -> None:
        what = ""
        if command.isdigit() and (400 <= int(command) < 600 or 902 <= int(command) <= 908):
            text = params.partition(" :")[2] if " :" in params else params
            what = f"{command} {text[:28]}".strip()
        elif command == "FAIL":
            what = "FAIL " + " ".join(params.split(" ")[:2])
        elif command == "NOTICE" and prefix.lower().startswith(("nickserv", "chanserv")):
            what = prefix.split("!")[0] + ": " + params.partition(" :")[2][:30]
        elif command == "ERROR":
            what = "ERROR " + params.partition("(")[2].rstrip(")")[:30]
        if what:
            self.counts[what] = self.counts.get(what, 0) + 1
            if what not in self.replies and len(self.replies) < 2:
                self.replies.append(what)


#: Bytes that make an idle member look at the lines it received (else it only counts them).
MARKERS = (b"PING", b"PONG", b" 001 ", b"ERROR")


class Client:
    """One IRC connection, on the benchmark's event loop."""

    def __init__(self, ctx: Ctx, name: str, *, detail: bool = True) -> None:
        self.ctx = ctx
        self.name = name
        self.nick = name
        self.detail = detail  # look at every line (else only those with MARKERS)
        self.pacer = Pacer()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.registered = asyncio.Event()
        self.closed = asyncio.Event()
        self.pongs: dict[str, asyncio.Future[float]] = {}
        self.waits: list[tuple[Callable[[str], bool], asyncio.Future[str]]] = []
        self.capture: Capture | None = None
        self.keep: list[str] | None = None  # every line received, while not None
        self.buf = b""
        self.seq = 0
        self.last_write = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, self.ctx.port, limit=1 << 20), 15.0
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.task = asyncio.create_task(self._read_loop())
        self.ctx.open_clients.append(self)

    def write(self, line: str | bytes) -> None:
        if self.writer is None or self.closed.is_set():
            raise ConnectionError(f"{self.name} is disconnected")
        data = line.encode() if isinstance(line, str) else line
        self.writer.write(data + b"\r\n")
        self.last_write = time.monotonic()

    @staticmethod
    def lagged(line: str | bytes) -> bool:
        head = line[:8].decode(errors="replace") if isinstance(line, bytes) else line[:8]
        return head.split(" ", 1)[0].upper() not in UNLAGGED

    async def send(self, line: str | bytes) -> None:
        """Send ``line`` when flood control lets it run at once."""
        if self.lagged(line):
            await self.pacer.take()
        self.write(line)

    def send_now(self, line: str | bytes) -> None:
        """Send ``line`` now (setup); the server may hold it a little."""
        if self.lagged(line):
            self.pacer.charge()
        self.write(line)

    async def ping(self, timeout: float) -> float:
        """A PING round trip; returns when its PONG arrives (after everything before it)."""
        self.seq += 1
        token = f"adv{self.seq}"
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pongs[token] = fut
        self.write(f"PING :{token}")
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pongs.pop(token, None)

    def expect(self, pred: Callable[[str], bool]) -> asyncio.Future[str]:
        """A future for the first line from now on for which ``pred`` is true."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waits.append((pred, fut))
        return fut

    async def register(
        self,
        nick: str,
        *,
        caps: Sequence[str] = (),
        password: str | None = None,
        before: Sequence[str] = (),
        wait: bool = True,
        timeout: float = 30.0,
    ) -> None:
        lines: list[str] = [f"PASS {password}"] if password else []
        if caps:
            lines += ["CAP LS 302", "CAP REQ :" + " ".join(caps)]
        lines += [*before, f"NICK {nick}", f"USER u 0 * :{self.name}"]
        if caps:
            lines.append("CAP END")
        self.nick = nick
        for line in lines:
            self.send_now(line)
        if wait:
            waits = [asyncio.ensure_future(e.wait()) for e in (self.registered, self.closed)]
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if not self.registered.is_set():
                raise ConnectionError(f"{self.name} ({nick}) was not registered")

    async def quit(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.write("QUIT :bye")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5.0)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                data = await self.reader.read(1 << 18)
                if not data:
                    break
                if self.capture is not None:
                    self.capture.bytes += len(data)
                buf = self.buf + data
                if not self.detail and not any(m in buf for m in MARKERS):
                    self.buf = buf[buf.rfind(b"\n") + 1 :]
                    continue
                *lines, self.buf = buf.split(b"\n")
                for raw in lines:
                    self._line(raw.rstrip(b"\r").decode("utf-8", "replace"))
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for fut in [*self.pongs.values(), *(f for _, f in self.waits)]:
                if not fut.done():
                    fut.set_exception(ConnectionError(f"{self.name} disconnected"))

    def _line(self, line: str) -> None:
        if DEBUG:
            log(f"    {self.name} <- {line[:200]}")
        rest = line
        if rest.startswith("@"):
            rest = rest.partition(" ")[2]
        prefix = ""
        if rest.startswith(":"):
            prefix, _, rest = rest[1:].partition(" ")
        command, _, params = rest.partition(" ")
        if self.capture is not None:
            self.capture.lines += 1
            self.capture.note(command, params, prefix)
        if self.keep is not None and len(self.keep) < 5000:
            self.keep.append(line)
        if command == "PING":
            with contextlib.suppress(ConnectionError, OSError):
                self.write("PONG " + params)
        elif command == "PONG":
            token = params.rsplit(" ", 1)[-1].lstrip(":")
            fut = self.pongs.get(token)
            if fut is not None and not fut.done():
                fut.set_result(time.monotonic())
        elif command == "001":
            self.nick = params.split(" ", 1)[0]
            self.registered.set()
        elif command == "NICK" and prefix.split("!", 1)[0] == self.nick:
            self.nick = params.lstrip(":")
        elif command == "ERROR":  # the server hangs up: so do we, as clients do
            self.close()
        if self.waits:
            for pred, fut in list(self.waits):
                if fut.done():
                    self.waits.remove((pred, fut))
                elif pred(line):
                    fut.set_result(line)
                    self.waits.remove((pred, fut))


# -- rows -------------------------------------------------------------------------------------

Lines = Callable[["Ctx", int], Sequence[tuple[str, str | bytes]]]
Hook = Callable[["Ctx", int], Awaitable[None]]


@dataclass
class Row:
    """One adversarial input, sent ``reps`` times by ``sender`` and measured each time."""

    key: str
    group: str
    label: str  #: the input as the table shows it
    line: str | bytes | Callable[[Ctx, int], str | bytes] | None  #: None: a bare PING
    sender: str = "A"
    setup: Lines | Hook | None = None  #: before each repetition, not measured
    teardown: Lines | Hook | None = None  #: after each repetition, not measured
    prep: Callable[[Ctx], Awaitable[None]] | None = None  #: once before, not measured
    after: Callable[[Ctx], Awaitable[None]] | None = None  #: once after, not measured
    reps: int | None = None  #: None: the run's default
    close: bool = False  #: the server closes the connection: wait for that, not a PONG
    custom: Callable[[Ctx, int], Awaitable[Sample]] | None = None
    kind: str = ""  #: "scrypt" (costs a hash by design), "oper" (operators only)
    note: str = ""
    budget_s: float = 6.0  #: no further repetition once the row has run this long


@dataclass
class Sample:
    cpu_ns: int  #: server CPU, raw (the background and the PING baseline not yet taken off)
    wall_ns: int  #: from sending the line to its PONG (or the connection's end)
    t0: int  #: monotonic ns: sent
    t2: int  #: monotonic ns: the server idle again afterwards
    out_bytes: int = 0
    out_lines: int = 0
    replies: list[str] = field(default_factory=list)
    input: str = ""
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class RowResult:
    row: Row
    samples: list[Sample] = field(default_factory=list)
    error: str = ""
    start: int = 0
    end: int = 0
    others_cores: float = math.nan  #: CPU other processes used meanwhile, in cores
    # filled in at the end
    cpu_ms: list[float] = field(default_factory=list)
    lat_ms: list[float] = field(default_factory=list)
    lost: int = 0


class Ctx:
    def __init__(self, args: argparse.Namespace, port: int, pid: int) -> None:
        self.args = args
        self.port = port
        self.cpu = ProcCPU(pid)
        self.server_pid = pid
        self.control_pid: int | None = None
        self.clients: dict[str, Client] = {}
        self.members: list[Client] = []
        self.open_clients: list[Client] = []
        self.passwords: dict[str, str] = {"evil": "evil-pass-0"}
        self.msgid = "nosuchmsgid"
        self.set_password_current = False  # NS SET PASSWORD wants the current one first
        self.commands: list[str] = []
        self.bg_rate = 0.0  # server CPU ns per wall ns with nothing but the control pair
        self.deadline = time.monotonic() + args.deadline
        self.timeout = args.timeout
        self.counter = 0

    def c(self, name: str) -> Client:
        return self.clients[name]

    def unique(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    async def client(
        self, name: str, nick: str, *, key: str | None = None, detail: bool = True, **reg: Any
    ) -> Client:
        c = Client(self, name, detail=detail)
        await c.connect()
        await c.register(nick, **reg)
        if key is not None:
            self.clients[key] = c
        return c

    async def settle(self, limit: float = 0.5) -> None:
        """Wait until the server has stopped working: two 5 ms steps in a row in which it
        used less than 0.3 ms of CPU (at most ``limit`` seconds)."""
        end = time.monotonic() + limit
        last = self.cpu.ns()
        quiet = 0
        while time.monotonic() < end:
            await asyncio.sleep(0.005)
            now = self.cpu.ns()
            quiet = quiet + 1 if now - last < 300_000 else 0
            last = now
            if quiet >= 2:
                return

    async def sync(self, names: Iterable[str]) -> None:
        await asyncio.gather(*(self.c(n).ping(self.timeout) for n in set(names)))


async def run_lines(ctx: Ctx, spec: Lines | Hook | None, rep: int) -> None:
    if spec is None:
        return
    got = spec(ctx, rep)
    if asyncio.iscoroutine(got):
        await got
        return
    senders = []
    for who, line in got:  # type: ignore[union-attr]
        await ctx.c(who).send(line)
        senders.append(who)
    await ctx.sync(senders)


async def measure(
    ctx: Ctx, sender: Client, line: str | bytes | None, *, close: bool = False
) -> Sample:
    """Send ``line`` from ``sender`` (flood control permitting), wait for its end (a PONG,
    or the connection's end), wait for the server to be idle; the CPU it used meanwhile."""
    if line is not None and Client.lagged(line):
        await sender.pacer.take()
    await ctx.settle()
    sender.capture = cap = Capture()
    c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
    try:
        if line is not None:
            sender.write(line)
        if close:  # the server should hang up; a PONG means it went on instead
            await pong_or_close(sender, ctx.timeout)
        else:
            await sender.ping(ctx.timeout)
        t1 = time.monotonic_ns()
        await ctx.settle()
        c1, t2 = ctx.cpu.ns(), time.monotonic_ns()
    finally:
        sender.capture = None
    shown = line.decode(errors="replace") if isinstance(line, bytes) else (line or "PING")
    return Sample(
        c1 - c0, t1 - t0, t0, t2, cap.bytes, cap.lines, cap.replies, shown[:600], cap.counts
    )


async def pong_or_close(c: Client, timeout: float) -> None:
    """A PING round trip, or the connection's end, whichever comes first."""
    waits = [asyncio.ensure_future(c.closed.wait())]
    with contextlib.suppress(ConnectionError, OSError):
        waits.append(asyncio.ensure_future(c.ping(timeout)))
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    for w in waits:  # a ping that failed because the connection ended is no error
        if w.done() and not w.cancelled():
            w.exception()
    if not done:
        raise TimeoutError(f"no PONG and no hang-up from {c.name} in {timeout:g} s")


async def run_row(ctx: Ctx, row: Row) -> RowResult:
    res = RowResult(row)
    reps = row.reps or ctx.args.reps
    if row.kind == "scrypt":  # a hash costs what it costs; past 3 failures, waits are added
        reps = min(reps, 3)
    start = time.monotonic()
    res.start = time.monotonic_ns()
    busy0, mine0 = box_busy_s(), own_cpu(ctx)
    try:
        if row.prep is not None:
            await row.prep(ctx)
        for rep in range(reps):
            if rep and time.monotonic() - start > row.budget_s:
                break
            if time.monotonic() > ctx.deadline:
                res.error = res.error or "skipped: the run's deadline passed"
                break
            await run_lines(ctx, row.setup, rep)
            if row.custom is not None:
                sample = await row.custom(ctx, rep)
            else:
                line = row.line(ctx, rep) if callable(row.line) else row.line
                sample = await measure(ctx, ctx.c(row.sender), line, close=row.close)
            res.samples.append(sample)
            await run_lines(ctx, row.teardown, rep)
        if row.after is not None:
            await row.after(ctx)
    except (TimeoutError, ConnectionError, OSError, KeyError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"[:120] or type(exc).__name__
        log(f"    {row.key}: {res.error}")
    res.end = time.monotonic_ns()
    wall = (res.end - res.start) / 1e9
    if wall > 0.05:
        others = (box_busy_s() - busy0) - (own_cpu(ctx) - mine0)
        res.others_cores = max(0.0, others / wall)
    return res


def own_cpu(ctx: Ctx) -> float:
    """CPU seconds of the server, this process and the control process."""
    me = os.times()
    return ctx.cpu.ns() / 1e9 + me.user + me.system + proc_cpu_s(ctx.control_pid)


# -- setup -------------------------------------------------------------------------------------

ATTACKER_CAPS = (
    "message-tags", "server-time", "batch", "labeled-response", "echo-message",
    "extended-join", "account-tag", "multi-prefix", "userhost-in-names", "away-notify",
    "invite-notify", "account-notify", "setname",
)  # fmt: skip


async def setup(ctx: Ctx) -> None:
    args = ctx.args
    t = time.monotonic()
    a = await ctx.client("attacker", "evil", key="A", caps=ATTACKER_CAPS)
    done = a.expect(lambda line: "NickServ" in line and "registered" in line)
    a.send_now(f"NS REGISTER {ctx.passwords['evil']}")
    await asyncio.wait_for(done, 30)
    pw = ctx.passwords["evil"]
    answer = a.expect(lambda line: line.startswith(":NickServ") and " NOTICE " in line)
    a.send_now(f"NS SET PASSWORD {pw} {pw}")  # which form does this server take?
    ctx.set_password_current = "changed" in await asyncio.wait_for(answer, 30)
    for line in ("JOIN #big,#hist,#evil,#bans,#evilreg", "MODE #hist -n", "HELP"):
        a.send_now(line)
    help_lines = a.expect(lambda line: " 706 " in line)  # RPL_ENDOFHELP
    a.keep = kept = []
    await asyncio.wait_for(help_lines, 30)
    a.keep = None
    ctx.commands = sorted(
        {w for line in kept if " 705 " in line for w in line.split(":", 2)[-1].split()
         if w.isupper() and w.isalpha() and len(w) > 1}
    )  # fmt: skip
    await ctx.client("attacker-2", "anon", key="A2")
    await ctx.client("attacker-a30", A30, key="A30")
    talker = await ctx.client("member", "talker", key="T")
    talker.send_now("JOIN #bans")
    for i in (1, 2, 3):  # accounts whose passwords the attacker guesses
        v = await ctx.client(f"victim{i}", f"victim{i}")
        done = v.expect(lambda line: "NickServ" in line and "registered" in line)
        v.send_now(f"NS REGISTER {VICTIM_PASS}")
        await asyncio.wait_for(done, 30)
        await v.quit()
    log(f"  attacker and helpers ready ({time.monotonic() - t:.1f} s)")
    t = time.monotonic()
    await open_members(ctx, args.members, args.history_each)
    log(f"  {len(ctx.members)} members in #big, history written ({time.monotonic() - t:.1f} s)")
    bans = [f"nomatch{i:03d}!*@*" for i in range(args.bans)]
    for i in range(0, len(bans), 4):
        a.send_now(f"MODE #bans +{'b' * len(bans[i : i + 4])} {' '.join(bans[i : i + 4])}")
    echo = a.expect(lambda line: "PRIVMSG #hist :msgid probe" in line and "msgid=" in line)
    a.send_now("PRIVMSG #hist :msgid probe")
    try:
        found = re.search(r"msgid=([^; ]+)", await asyncio.wait_for(echo, 15))
        ctx.msgid = found.group(1) if found else ctx.msgid
    except TimeoutError:
        log("  no msgid seen (echo-message or message-tags refused?): AROUND uses a false one")
    await ctx.sync(["A", "A2", "A30", "T"])


async def open_members(ctx: Ctx, count: int, each: int) -> None:
    """``count`` idle members in #big, each also in a room of its own, each watching the
    attacker's nicks with MONITOR; together they write the history: 1,000 messages to
    #hist, the rest to themselves. Each first takes the nick "ghost" and leaves it, which
    fills WHOWAS."""
    writers = math.ceil(1000 / each) if each else 0
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            c = Client(ctx, f"m{i:03d}", detail=False)
            await c.connect()
            nick = f"m{i:03d}"
            caps = ("message-tags", "server-time") if i % 2 else ()
            await c.register("ghost", caps=caps, wait=False)
            c.nick = nick
            for line in (f"NICK {nick}", f"JOIN #big,#r{i:03d}", "MONITOR + evil,evil2,quitter"):
                c.send_now(line)
            target = "#hist" if i < writers else nick
            for j in range(each):
                c.send_now(f"PRIVMSG {target} :{nick} {j} {FILLER[:300]}")
            await c.ping(120)
            c.nick = nick  # (its 001 may have named it ghost)
            ctx.members.append(c)

    await asyncio.gather(*(one(i) for i in range(count)))
    ctx.members.sort(key=lambda c: c.name)


async def keepalive(ctx: Ctx) -> None:
    """Idle connections say something now and then (PONG, which costs no flood token), so
    that the server's PING after 90 s idle does not come to them all at once."""
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for c in list(ctx.open_clients):
            if not c.closed.is_set() and now - c.last_write > 45.0:
                with contextlib.suppress(ConnectionError, OSError):
                    c.write("PONG :keepalive")


async def reset_failures(ctx: Ctx, account: str) -> None:
    """A correct login to ``account`` from this address: it forgets the failed logins
    counted against the address and the account, so that the next row is not slowed
    by the backoff (which sleeps; it costs no CPU)."""
    try:
        c = await ctx.client("reset", ctx.unique("reset"), password=f"{account}:{VICTIM_PASS}")
    except ConnectionError:
        log(f"    (the login to {account} that resets the failure counts was refused)")
        return
    await c.quit()


# -- the inputs --------------------------------------------------------------------------------


def lines(*pairs: tuple[str, str | bytes]) -> Lines:
    return lambda ctx, rep: pairs


def member_nicks(ctx: Ctx) -> list[str]:
    return [c.nick for c in ctx.members]


async def fresh_register(ctx: Ctx, rep: int) -> Sample:
    """Connect and register: CAP negotiation, NICK, USER, the welcome burst."""
    c = Client(ctx, "fresh")
    await ctx.settle()
    c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
    await c.connect()
    c.capture = cap = Capture()
    await c.register(ctx.unique("fresh"), caps=("message-tags", "server-time"), wait=False)
    await c.ping(ctx.timeout)
    t1 = time.monotonic_ns()
    await ctx.settle()
    c1, t2 = ctx.cpu.ns(), time.monotonic_ns()
    c.capture = None
    await c.quit()
    return Sample(c1 - c0, t1 - t0, t0, t2, cap.bytes, cap.lines, cap.replies, "connect+register")


async def pass_fail(ctx: Ctx, rep: int) -> Sample:
    """Connect with PASS <account>:<wrong password>: a hash, then the server hangs up."""
    c = Client(ctx, "pass")
    await ctx.settle()
    c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
    await c.connect()
    c.capture = cap = Capture()
    await c.register(ctx.unique("pass"), password="victim3:wrong-password", wait=False)
    await asyncio.wait_for(c.closed.wait(), ctx.timeout)
    t1 = time.monotonic_ns()
    await ctx.settle()
    c1, t2 = ctx.cpu.ns(), time.monotonic_ns()
    c.close()
    return Sample(c1 - c0, t1 - t0, t0, t2, cap.bytes, cap.lines, cap.replies, "PASS victim3:x")


def quitter(join: bool = True) -> Hook:
    async def hook(ctx: Ctx, rep: int) -> None:
        old = ctx.clients.get("Q")
        if old is not None and not old.closed.is_set():
            await old.quit()
        q = await ctx.client("quitter", "quitter", key="Q")
        if join:
            await q.send("JOIN #big")
        await q.ping(ctx.timeout)

    return hook


async def kill_quitter(ctx: Ctx, rep: int) -> Sample:
    a, q = ctx.c("A"), ctx.c("Q")
    await a.pacer.take()
    await ctx.settle()
    a.capture = cap = Capture()
    c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
    a.write("KILL quitter :adversary")
    await a.ping(ctx.timeout)
    await asyncio.wait_for(q.closed.wait(), ctx.timeout)
    t1 = time.monotonic_ns()
    await ctx.settle()
    c1, t2 = ctx.cpu.ns(), time.monotonic_ns()
    a.capture = None
    q.close()
    return Sample(c1 - c0, t1 - t0, t0, t2, cap.bytes, cap.lines, cap.replies, "KILL quitter")


def kicked(ctx: Ctx) -> list[str]:
    nicks = member_nicks(ctx)[10:]
    line = fill("KICK #big ", reversed(nicks))
    return line.split(" ")[2].split(",")


async def rejoin_kicked(ctx: Ctx, rep: int) -> None:
    names = set(kicked(ctx))
    back = [c for c in ctx.members if c.nick in names]
    for c in back:
        c.send_now("JOIN #big")
    await asyncio.gather(*(c.ping(ctx.timeout) for c in back))


async def anon_nick(ctx: Ctx, nick: str) -> None:
    await ctx.c("A2").send(f"NICK {nick}")
    await ctx.c("A2").ping(ctx.timeout)


def drop_setup() -> Hook:
    async def hook(ctx: Ctx, rep: int) -> None:
        a2 = ctx.c("A2")
        await anon_nick(ctx, ctx.unique("drop"))
        done = a2.expect(lambda line: line.startswith(":NickServ") and " NOTICE " in line)
        await a2.send(f"NS REGISTER {VICTIM_PASS}")
        await asyncio.wait_for(done, ctx.timeout)

    return hook


def set_password(ctx: Ctx, rep: int = 0) -> str:
    """NS SET PASSWORD, setting the password it has (so that it never changes): with the
    current password first where the server asks for it."""
    pw = ctx.passwords["evil"]
    return f"NS SET PASSWORD {pw} {pw}" if ctx.set_password_current else f"NS SET PASSWORD {pw}"


def sasl_plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


def rows(ctx: Ctx) -> list[Row]:
    args = ctx.args
    nicks = member_nicks(ctx)
    some = nicks[:4]
    text = (FILLER * 2)[:400]
    huge_tag = "@+x=" + "y" * (CLIENT_TAGS - 6 - len("@+x="))
    many_tags = "@" + ";".join(f"+t{i}" for i in range(1200))
    many_tags = many_tags[: many_tags.rfind(";", 0, CLIENT_TAGS - 2)]
    commas = "," * (LINE - 8)
    flags = fill("MODE #big ", ["+imps-imps"] * 100, sep="")
    if flags.endswith("+imps"):  # end with the room as it was
        flags = flags[: -len("+imps")]
    toggles = " ".join(["-server-time", "server-time"] * 12)
    stats_letters = "ulyokmc?" if not args.quick else "uly"
    help_subjects = ["", *ctx.commands] if not args.quick else ["", "CHATHISTORY", "WHO"]
    chunks = base64.b64encode(b"\0" * 2900).decode()  # 9 pieces of 400, and a last one
    R = Row
    out = [
        R("ping", "baseline", "PING (bare round trip: the baseline taken off every row)", None,
          reps=7),
        # -- registration.py -------------------------------------------------------------
        R("register", "registration", "connect, CAP LS 302, CAP REQ, NICK, USER, CAP END",
          None, sender="new", custom=fresh_register),
        R("cap-ls", "registration", "CAP LS 302", "CAP LS 302"),
        R("cap-req-many", "registration", "CAP REQ :message-tags server-time … (line full)",
          fill("CAP REQ :", ["message-tags", "server-time", "batch", "echo-message"] * 40,
               sep=" ")),
        R("cap-req-toggle", "registration",
          "CAP REQ :-server-time server-time … (profile changes: every room regrouped)",
          lambda ctx, rep: f"CAP REQ :{toggles}" + (" -server-time" if rep % 2 == 0 else "")),
        R("cap-req-unknown", "registration", "CAP REQ :x0 x1 x2 … (line full, unknown: NAK)",
          fill("CAP REQ :", (f"x{i}" for i in range(500)), sep=" ")),
        R("cap-list", "registration", "CAP LIST", "CAP LIST"),
        R("cap-ls-sup2", "registration", "CAP LS ²", "CAP LS ²"),
        R("nick", "registration",
          f"NICK evil2 / NICK evil (in #big with {len(nicks)}, watched by {len(nicks)})",
          lambda ctx, rep: "NICK evil2" if rep % 2 == 0 else "NICK evil",
          after=lambda ctx: _nick_back(ctx)),
        R("setname", "registration", f"SETNAME :<100 chars> (neighbours: {len(nicks)})",
          "SETNAME :" + "r" * 100),
        R("user-again", "registration", "USER u 0 * :x (registered: 462)", "USER u 0 * :x"),
        R("pass-again", "registration", "PASS x (registered: 462)", "PASS x"),
        R("pong", "registration", "PONG :x", "PONG :x"),
        R("quit", "registration", f"QUIT :<300 chars> (in #big, watched by {len(nicks)})",
          "QUIT :" + FILLER[:300], sender="Q", setup=quitter(), close=True),
        # -- accounts.py -----------------------------------------------------------------
        R("ns-set-password", "accounts",
          "NS SET PASSWORD [<current>] <new> (logged in)", set_password, kind="scrypt"),
        R("ns-identify-known", "accounts", "NS IDENTIFY victim1 <wrong password>",
          "NS IDENTIFY victim1 wrong-password", sender="A2", kind="scrypt",
          after=lambda ctx: reset_failures(ctx, "victim1")),
        R("ns-identify-unknown", "accounts", "NS IDENTIFY nosuchaccount <wrong password>",
          "NS IDENTIFY nosuchaccount wrong-password", sender="A2", kind="scrypt",
          after=lambda ctx: reset_failures(ctx, "victim1")),
        R("ns-register-taken", "accounts", "NS REGISTER <password> as victim2 (name taken)",
          "NS REGISTER some-password", sender="A2", kind="scrypt",
          prep=lambda ctx: anon_nick(ctx, "victim2"),
          after=lambda ctx: _after_taken(ctx)),
        R("register-taken", "accounts", "REGISTER * * <password> as victim2 (name taken)",
          "REGISTER * * some-password", sender="A2", kind="scrypt",
          prep=lambda ctx: anon_nick(ctx, "victim2"),
          after=lambda ctx: _after_taken(ctx)),
        R("sasl-wrong", "accounts", "AUTHENTICATE PLAIN, AUTHENTICATE <victim3, wrong password>",
          "AUTHENTICATE " + sasl_plain("victim3", "wrong-password"), sender="A2", kind="scrypt",
          setup=lines(("A2", "AUTHENTICATE PLAIN")),
          after=lambda ctx: reset_failures(ctx, "victim3")),
        R("sasl-long", "accounts", "AUTHENTICATE: a 4 KiB PLAIN payload in 400-byte pieces",
          "AUTHENTICATE " + (chunks[3600:] or "+"), sender="A2", reps=2,
          setup=lambda ctx, rep: [("A2", "AUTHENTICATE PLAIN")]
          + [("A2", "AUTHENTICATE " + chunks[i : i + 400]) for i in range(0, 3600, 400)]),
        R("pass-wrong", "accounts", "connect with PASS victim3:<wrong password>", None,
          sender="new", custom=pass_fail, kind="scrypt",
          after=lambda ctx: reset_failures(ctx, "victim3")),
        R("ns-info", "accounts", "NS INFO victim1", "NS INFO victim1"),
        R("ns-info-long", "accounts", "NS INFO <30 chars, not registered>", "NS INFO " + A30),
        R("nickserv-help", "accounts", "PRIVMSG NickServ :HELP", "PRIVMSG NickServ :HELP"),
        R("nickserv-cmd", "accounts", "NICKSERV INFO evil", "NICKSERV INFO evil"),
        R("ns-unknown", "accounts", "NS <400 chars of words>",
          fill("NS ", ["word"] * 200, sep=" ")),
        R("ns-drop", "accounts", "NS DROP [<password>] (a fresh account)",
          f"NS DROP {VICTIM_PASS}", sender="A2", reps=2, kind="scrypt",
          setup=drop_setup(), after=lambda ctx: anon_nick(ctx, "anon")),
        R("cs-register", "accounts", "PRIVMSG ChanServ :REGISTER #evilreg",
          "PRIVMSG ChanServ :REGISTER #evilreg",
          teardown=lines(("A", "PRIVMSG ChanServ :DROP #evilreg"))),
        R("cs-drop", "accounts", "PRIVMSG ChanServ :DROP #evilreg",
          "PRIVMSG ChanServ :DROP #evilreg",
          setup=lines(("A", "PRIVMSG ChanServ :REGISTER #evilreg"))),
        R("cs-info", "accounts", "PRIVMSG ChanServ :INFO #big", "PRIVMSG ChanServ :INFO #big"),
        R("topic-registered", "accounts", "TOPIC #evilreg :<390 chars> (a registered room)",
          lambda ctx, rep: f"TOPIC #evilreg :{rep} " + (FILLER * 2)[:385],
          prep=lambda ctx: _send_sync(ctx, "A", "PRIVMSG ChanServ :REGISTER #evilreg"),
          after=lambda ctx: _send_sync(ctx, "A", "PRIVMSG ChanServ :DROP #evilreg")),
        # -- channels.py -----------------------------------------------------------------
        R("join-many", "channels", "JOIN #j000,#j001,… (line full; 45 rooms created)",
          fill("JOIN ", (f"#j{i:03d}" for i in range(200))),
          teardown=lambda ctx, rep: [("A", fill("PART ", (f"#j{i:03d}" for i in range(200))))]),
        R("part-many", "channels", "PART #j000,#j001,… (line full; 45 rooms)",
          fill("PART ", (f"#j{i:03d}" for i in range(200))),
          setup=lambda ctx, rep: [("A", fill("JOIN ", (f"#j{i:03d}" for i in range(200))))]),
        R("join-0", "channels", "JOIN 0 (in 50 rooms)", "JOIN 0", sender="A2",
          setup=lambda ctx, rep: [("A2", fill("JOIN ", (f"#k{i:03d}" for i in range(200))))]),
        R("join-commas", "channels", "JOIN ,,,,… (502 commas)", "JOIN " + commas),
        R("part-commas", "channels", "PART ,,,,… (502 commas)", "PART " + commas),
        R("join-big", "channels", f"JOIN #big ({len(nicks)} members)", "JOIN #big",
          sender="A2", teardown=lines(("A2", "PART #big"))),
        R("part-big", "channels", f"PART #big :<reason> ({len(nicks)} members)",
          "PART #big :" + FILLER[:200], sender="A2", setup=lines(("A2", "JOIN #big"))),
        R("join-bans", "channels", f"JOIN #bans ({args.bans} bans to check)", "JOIN #bans",
          sender="T", setup=lines(("T", "PART #bans"))),
        R("topic-big", "channels", f"TOPIC #big :<390 chars> ({len(nicks)} members)",
          lambda ctx, rep: f"TOPIC #big :{rep} " + (FILLER * 2)[:385]),
        R("topic-query", "channels", "TOPIC #big", "TOPIC #big"),
        R("names-big", "channels", f"NAMES #big ({len(nicks)} members)", "NAMES #big"),
        R("names-all", "channels", f"NAMES (every room: {len(nicks) + 6})", "NAMES"),
        R("names-repeat", "channels", "NAMES #big,#big,… (line full: #big x100)",
          fill("NAMES ", ["#big"] * 200)),
        R("names-repeat-labeled", "channels",
          "@label=x NAMES #big,#big,… (the same, as one labeled-response batch)",
          fill("@label=adv NAMES ", ["#big"] * 200)),
        R("list", "channels", f"LIST ({len(nicks) + 6} rooms)", "LIST"),
        R("list-filter", "channels", "LIST >0,<100000,>0,… (line full of filters)",
          fill("LIST ", [">0", "<100000"] * 100)),
        R("list-names", "channels", "LIST #r000,#r001,… (line full)",
          fill("LIST ", (f"#r{i:03d}" for i in range(500)))),
        R("list-mask", "channels", f"LIST {REGEX_WHO}", f"LIST {REGEX_WHO}"),
        R("kick-unknown", "channels", "KICK #big x000,x001,… (line full, no such nicks)",
          fill("KICK #big ", (f"x{i:03d}" for i in range(500)))),
        R("kick-commas", "channels", "KICK #big ,,,,… (commas)", "KICK #big " + commas[:-5]),
        R("kick-members", "channels", "KICK #big m299,m298,… (line full: ~100 members)",
          lambda ctx, rep: "KICK #big " + ",".join(kicked(ctx)), reps=1,
          teardown=rejoin_kicked),
        R("invite", "channels", f"INVITE anon #big (invite-notify: {len(nicks)} members)",
          "INVITE anon #big"),
        R("invite-list", "channels", "INVITE (list)", "INVITE", sender="A2"),
        # -- chathistory.py ---------------------------------------------------------------
        R("ch-latest", "chathistory", "CHATHISTORY LATEST #hist * 1000",
          "CHATHISTORY LATEST #hist * 1000"),
        R("ch-before", "chathistory", "CHATHISTORY BEFORE #hist timestamp=2100-… 1000",
          "CHATHISTORY BEFORE #hist timestamp=2100-01-01T00:00:00.000Z 1000"),
        R("ch-around", "chathistory", "CHATHISTORY AROUND #hist msgid=<a real one> 1000",
          lambda ctx, rep: f"CHATHISTORY AROUND #hist msgid={ctx.msgid} 1000"),
        R("ch-msgid-none", "chathistory", "CHATHISTORY AFTER #hist msgid=nosuchmsgid 1000",
          "CHATHISTORY AFTER #hist msgid=nosuchmsgid 1000"),
        R("ch-between", "chathistory", "CHATHISTORY BETWEEN #hist timestamp=1970-… "
          "timestamp=2100-… 1000",
          "CHATHISTORY BETWEEN #hist timestamp=1970-01-01T00:00:00.000Z "
          "timestamp=2100-01-01T00:00:00.000Z 1000"),
        R("ch-targets", "chathistory", "CHATHISTORY TARGETS timestamp=1970-… timestamp=2100-… "
          "1000", "CHATHISTORY TARGETS timestamp=1970-01-01T00:00:00.000Z "
          "timestamp=2100-01-01T00:00:00.000Z 1000"),
        R("ch-sup2", "chathistory", "CHATHISTORY LATEST #hist * ²",
          "CHATHISTORY LATEST #hist * ²"),
        R("ch-bad-time", "chathistory",
          "CHATHISTORY BEFORE #hist timestamp=2026-13-45T99:99:99Z 100",
          "CHATHISTORY BEFORE #hist timestamp=2026-13-45T99:99:99Z 100"),
        R("ch-dm", "chathistory", "CHATHISTORY LATEST m001 * 1000",
          "CHATHISTORY LATEST m001 * 1000"),
        # -- messaging.py ------------------------------------------------------------------
        R("privmsg-big", "messaging", f"PRIVMSG #big :<400 chars> ({len(nicks)} members)",
          "PRIVMSG #big :" + text),
        R("privmsg-big4", "messaging", "PRIVMSG #big,#big,#big,#big :<400 chars> "
          "(max_targets=4)", "PRIVMSG #big,#big,#big,#big :" + text),
        R("notice-big4", "messaging", "NOTICE #big,#big,#big,#big :<400 chars>",
          "NOTICE #big,#big,#big,#big :" + text),
        R("tagmsg-huge", "messaging", "@+x=<4 KiB> TAGMSG #big,#big,#big,#big",
          f"{huge_tag} TAGMSG #big,#big,#big,#big"),
        R("tagmsg-many", "messaging", "@+t0;+t1;…(4 KiB of tags, ~900) TAGMSG #big",
          f"{many_tags} TAGMSG #big"),
        R("privmsg-dm4", "messaging", "PRIVMSG m000,m001,m002,m003 :<400 chars>",
          f"PRIVMSG {','.join(some)} :" + text),
        R("privmsg-offline", "messaging", "PRIVMSG victim1 :<400 chars> (offline account: kept)",
          "PRIVMSG victim1 :" + text),
        R("privmsg-commas", "messaging", "PRIVMSG ,,,,… :x (commas)",
          "PRIVMSG " + commas[:-3] + " :x"),
        R("privmsg-bans", "messaging", f"PRIVMSG #bans :hi (non-op member; {args.bans} bans)",
          "PRIVMSG #bans :hi", sender="T"),
        R("away", "messaging", f"AWAY :<390 chars> / AWAY (neighbours: {len(nicks)})",
          lambda ctx, rep: "AWAY :" + (FILLER * 2)[:390] if rep % 2 == 0 else "AWAY",
          after=lambda ctx: _send_sync(ctx, "A", "AWAY")),
        # -- modes.py ----------------------------------------------------------------------
        R("mode-ban-set", "modes", f"MODE #evil +b {REGEX_BAN} / -b",
          lambda ctx, rep: f"MODE #evil {'+' if rep % 2 == 0 else '-'}b {REGEX_BAN}"),
        R("join-regex-ban", "modes", f"JOIN #evil by {A30[:6]}…(30 a's), +b {REGEX_BAN} set",
          "JOIN #evil", sender="A30", teardown=lines(("A30", "PART #evil")),
          prep=lambda ctx: _send_sync(ctx, "A", f"MODE #evil +b {REGEX_BAN}"),
          after=lambda ctx: _send_sync(ctx, "A", f"MODE #evil -b {REGEX_BAN}"), budget_s=3.0),
        R("privmsg-regex-mute", "modes",
          f"PRIVMSG #evil :hi by {A30[:6]}…(30 a's, not op), +b {REGEX_MUTE} set",
          "PRIVMSG #evil :hi", sender="A30", prep=_mute_prep, after=_mute_after, budget_s=3.0),
        R("mode-flags", "modes", "MODE #big +imps-imps+imps… (line full: 400 changes)", flags),
        R("mode-unknown", "modes", "MODE #big +zzzz… (500 unknown modes)",
          fill("MODE #big +", ["z"] * 600, sep="")),
        R("mode-not-op", "modes", "MODE #big +iiii… by a non-op (500 refusals)",
          fill("MODE #big +", ["i"] * 600, sep=""), sender="A2",
          setup=lines(("A2", "JOIN #big")), teardown=lines(("A2", "PART #big"))),
        R("mode-bans4", "modes", "MODE #big +bbbb a!*@* b!*@* c!*@* d!*@* / -bbbb",
          lambda ctx, rep: f"MODE #big {'+' if rep % 2 == 0 else '-'}bbbb a!*@* b!*@* "
          "c!*@* d!*@*", after=lambda ctx: _send_sync(ctx, "A", "MODE #big -bbbb a!*@* "
                                                       "b!*@* c!*@* d!*@*")),
        R("mode-banlist", "modes", f"MODE #bans b ({args.bans} bans listed)", "MODE #bans b"),
        R("mode-list-all", "modes", "MODE #bans +bbbbeeeeIIII… (list requests, line full)",
          fill("MODE #bans +", ["b", "e", "I"] * 200, sep="")),
        R("mode-ops", "modes", "MODE #big +oooo m000 m001 m002 m003 / -oooo",
          lambda ctx, rep: f"MODE #big {'+' if rep % 2 == 0 else '-'}oooo {' '.join(some)}",
          after=lambda ctx: _send_sync(ctx, "A", f"MODE #big -oooo {' '.join(some)}")),
        R("mode-user", "modes", "MODE evil +i-i+i-i… (line full)",
          lambda ctx, rep: fill(f"MODE {ctx.c('A').nick} ", ["+i-i"] * 200, sep="")),
        R("mode-query", "modes", "MODE #big", "MODE #big"),
        R("mode-limit-sup2", "modes", "MODE #evil +l ²", "MODE #evil +l ²"),
        # -- monitor.py --------------------------------------------------------------------
        R("monitor-add", "monitor", "MONITOR + n000,n001,… (line full; MONITOR=100)",
          fill("MONITOR + ", (f"n{i:03d}" for i in range(500))),
          teardown=lines(("A", "MONITOR C"))),
        R("monitor-list", "monitor", "MONITOR L (100 watched)", "MONITOR L",
          prep=lambda ctx: _monitor_full(ctx), after=lambda ctx: _send_sync(ctx, "A",
                                                                           "MONITOR C")),
        R("monitor-status", "monitor", "MONITOR S (100 watched, some online)", "MONITOR S",
          prep=lambda ctx: _monitor_full(ctx, online=True),
          after=lambda ctx: _send_sync(ctx, "A", "MONITOR C")),
        R("monitor-remove", "monitor", "MONITOR - n000,n001,… (line full)",
          fill("MONITOR - ", (f"n{i:03d}" for i in range(500))),
          setup=lambda ctx, rep: [("A", fill("MONITOR + ", (f"n{i:03d}" for i in range(500))))]),
        R("monitor-commas", "monitor", "MONITOR + ,,,,… (commas)", "MONITOR + " + commas[:-2]),
        R("monitor-clear", "monitor", "MONITOR C (100 watched)", "MONITOR C",
          setup=lambda ctx, rep: [("A", fill("MONITOR + ", (f"n{i:03d}" for i in range(500))))]),
        # -- queries.py --------------------------------------------------------------------
        R("who-regex", "queries", f"WHO {REGEX_WHO} ({A30[:6]}…, 30 a's, online)",
          f"WHO {REGEX_WHO}", budget_s=1.0),
        R("who-big", "queries", f"WHO #big ({len(nicks)} members)", "WHO #big"),
        R("whox-big", "queries", "WHO #big %tcuihsnfdlaor,123", "WHO #big %tcuihsnfdlaor,123"),
        R("who-all", "queries", f"WHO * (everyone: {len(nicks) + 8})", "WHO *"),
        R("who-labeled", "queries", "@label=x WHO #big (labeled-response batch)",
          "@label=adv WHO #big"),
        R("whois", "queries", "WHOIS m001", "WHOIS m001"),
        R("whois-many", "queries", "WHOIS m000,m001,… (line full)",
          fill("WHOIS ", nicks or ["x"])),
        R("whowas", "queries", "WHOWAS ghost (many who left that nick)", "WHOWAS ghost"),
        R("whowas-sup2", "queries", "WHOWAS ghost ²", "WHOWAS ghost ²"),
        R("ison", "queries", "ISON m000 m001 … (line full)", fill("ISON ", nicks, sep=" ")),
        R("userhost", "queries", "USERHOST m000 m001 … (line full)",
          fill("USERHOST ", nicks, sep=" ")),
        R("lusers", "queries", "LUSERS", "LUSERS"),
        R("motd", "queries", "MOTD", "MOTD"),
        R("version", "queries", "VERSION", "VERSION"),
        R("time", "queries", "TIME", "TIME"),
        R("info", "queries", "INFO", "INFO"),
        R("admin", "queries", "ADMIN", "ADMIN"),
        R("info-mask", "queries", f"INFO {REGEX_WHO}", f"INFO {REGEX_WHO}"),
        R("stats", "queries", f"STATS <letter>, each of {stats_letters} (not an operator)",
          lambda ctx, rep: f"STATS {stats_letters[rep % len(stats_letters)]}",
          reps=len(stats_letters)),
        R("help", "queries", "HELP, and HELP <command> for each command",
          lambda ctx, rep: f"HELP {help_subjects[rep % len(help_subjects)]}".strip(),
          reps=len(help_subjects), budget_s=8.0),
        # -- lines --------------------------------------------------------------------------
        R("line-commas", "lines", ",,,,… (a 510-byte line of commas: the command)",
          "," * LINE),
        R("line-unknown", "lines", "XXXX… (a 510-byte unknown command)", "X" * LINE),
        R("line-not-utf8", "lines", "PRIVMSG #big :<500 bytes, not UTF-8>",
          b"PRIVMSG #big :" + b"\xff" * 490),
        R("line-tags-over", "lines", "@+a=<8.5 KiB> TAGMSG #big (tags over 4 KiB: 417)",
          b"@+a=" + b"y" * 8500 + b" TAGMSG #big"),
        R("line-too-long", "lines", "@+a=<9,000 bytes> TAGMSG #big (over the line limit)",
          b"@+a=" + b"y" * 9000 + b" TAGMSG #big", sender="Q", setup=quitter(join=False),
          close=True),
        # -- operators.py ------------------------------------------------------------------
        # The right password between the wrong ones forgets the failures they counted.
        R("oper-unknown", "operators", "OPER nosuchoper x (no such operator)",
          "OPER nosuchoper x", kind="scrypt"),
        R("oper-ok", "operators", f"OPER {OPER_NAME} <password>", f"OPER {OPER_NAME} {OPER_PASS}",
          reps=1, kind="scrypt"),
        R("oper-wrong", "operators", f"OPER {OPER_NAME} <wrong password>",
          f"OPER {OPER_NAME} wrong-password", kind="scrypt"),
        R("stats-l", "operators", f"STATS l (an operator; {len(nicks) + 8} connections)",
          "STATS l", kind="oper"),
        R("stats-y", "operators", "STATS y (an operator)", "STATS y", kind="oper"),
        R("kill", "operators", f"KILL quitter (in #big, watched by {len(nicks)})", None,
          setup=quitter(), custom=kill_quitter, kind="oper"),
        R("wallops", "operators", "WALLOPS :<400 chars>", "WALLOPS :" + text, kind="oper"),
        R("privmsg-all", "operators", f"PRIVMSG $* :<400 chars> (everyone: {len(nicks) + 8})",
          "PRIVMSG $* :" + text, kind="oper"),
        R("rehash", "operators", "REHASH", "REHASH", kind="oper",
          after=lambda ctx: _send_sync(ctx, "A", f"MODE {ctx.c('A').nick} -o")),
    ]  # fmt: skip
    return out


async def _send_sync(ctx: Ctx, who: str, line: str) -> None:
    await ctx.c(who).send(line)
    await ctx.c(who).ping(ctx.timeout)


async def _nick_back(ctx: Ctx) -> None:
    if ctx.c("A").nick != "evil":
        await _send_sync(ctx, "A", "NICK evil")


async def _after_taken(ctx: Ctx) -> None:
    await anon_nick(ctx, "anon")
    await reset_failures(ctx, "victim2")


async def _mute_prep(ctx: Ctx) -> None:
    await _send_sync(ctx, "A", f"MODE #evil +b {REGEX_MUTE}")
    await _send_sync(ctx, "A30", "JOIN #evil")


async def _mute_after(ctx: Ctx) -> None:
    await _send_sync(ctx, "A30", "PART #evil")
    await _send_sync(ctx, "A", f"MODE #evil -b {REGEX_MUTE}")


async def _monitor_full(ctx: Ctx, online: bool = False) -> None:
    names = member_nicks(ctx) if online else []
    names = names[: ctx.args.members // 2] + [f"n{i:03d}" for i in range(100)]
    a = ctx.c("A")
    for i in range(0, 100, 25):
        await a.send("MONITOR + " + ",".join(names[i : i + 25]))
    await a.ping(ctx.timeout)


# -- hashes an address can force ---------------------------------------------------------------


async def hash_rate(ctx: Ctx, conns: int, each: int, limit: float) -> dict[str, Any]:
    """``conns`` connections logged in to one account (from one address, as the per-address
    limit allows) each send ``each`` NS SET PASSWORD at once (within their flood burst):
    how many the server does in at most ``limit`` seconds, how fast, at what cost."""
    clients = []
    refused = 0
    for i in range(conns):
        try:
            c = await ctx.client(f"hash{i}", ctx.unique("hash"),
                                 password=f"evil:{ctx.passwords['evil']}")  # fmt: skip
            clients.append(c)
        except ConnectionError:
            refused += 1
    if not clients:
        raise ConnectionError("no connection could log in to the attacker's account")
    await asyncio.gather(*(c.ping(ctx.timeout) for c in clients))
    await ctx.settle()
    caps = []
    for c in clients:
        c.capture = Capture()
        caps.append(c.capture)
    c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
    for c in clients:
        for _ in range(each):
            c.send_now(set_password(ctx))
    pings = [asyncio.ensure_future(c.ping(limit + 5.0)) for c in clients]
    finished, _ = await asyncio.wait(pings, timeout=limit)
    t1 = time.monotonic_ns()
    done = sum(n for cap in caps for what, n in cap.counts.items() if "Password changed" in what)
    c1, t2 = ctx.cpu.ns(), time.monotonic_ns()
    for p in pings:
        p.cancel()
    for c in clients:
        c.capture = None
        c.close()  # what it has not run yet goes with it (or runs later: the end of the run)
    answers: dict[str, int] = {}
    for cap in caps:
        for what, n in cap.counts.items():
            answers[what] = answers.get(what, 0) + n
    wall = (t1 - t0) / 1e9
    return {
        "connections": len(clients),
        "logins_refused": refused,
        "asked": len(clients) * each,
        "all_answered": len(finished) == len(pings),
        "done": done,
        "answers": answers,
        "seconds": wall,
        "per_s": done / wall if wall else math.nan,
        "server_cpu_s": (c1 - c0) / 1e9,
        "server_cores": (c1 - c0) / (t2 - t0) if t2 > t0 else math.nan,
        "cpu_ms_each": (c1 - c0) / 1e6 / done if done else math.nan,
        "t0": t0,
        "t2": t2,
    }


# -- the control pair (a separate process) ------------------------------------------------------


async def _control(port: int, out: str, max_seconds: float, rate: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pending: dict[str, int] = {}
    samples: list[tuple[int, int]] = []
    sent = 0

    async def open_one(nick: str) -> tuple[asyncio.StreamWriter, asyncio.Event, asyncio.Task]:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(f"NICK {nick}\r\nUSER c 0 * :control\r\n".encode())
        registered = asyncio.Event()

        async def read() -> None:
            buf = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                now = time.monotonic_ns()
                *got, buf = (buf + data).split(b"\n")
                for raw in got:
                    parts = raw.rstrip(b"\r").split(b" ")
                    if parts[0] == b"PING":
                        writer.write(b"PONG " + b" ".join(parts[1:]) + b"\r\n")
                    elif len(parts) > 1 and parts[1] == b"001":
                        registered.set()
                    elif len(parts) > 3 and parts[1] == b"PRIVMSG":
                        key = parts[3].lstrip(b":").decode(errors="replace")
                        when = pending.pop(key, None)
                        if when is not None:
                            samples.append((when, now))

        return writer, registered, asyncio.create_task(read())

    a, a_ready, a_task = await open_one("ctrla")
    b, b_ready, b_task = await open_one("ctrlb")
    await asyncio.wait_for(asyncio.gather(a_ready.wait(), b_ready.wait()), 30)
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    end = time.monotonic() + max_seconds

    async def sender(writer: asyncio.StreamWriter, other: str, tag: str, offset: float) -> None:
        nonlocal sent
        await asyncio.sleep(offset)
        interval = 1.0 / rate
        due = time.monotonic()
        seq = 0
        while not stop.is_set() and time.monotonic() < end:
            key = f"{tag}{seq}"
            seq += 1
            now = time.monotonic_ns()
            pending[key] = now
            writer.write(f"PRIVMSG {other} :{key} {now}\r\n".encode())
            sent += 1
            due += interval
            delay = due - time.monotonic()
            if delay < -interval:  # fell behind: no catching up in a burst (flood control)
                due, delay = time.monotonic(), 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, delay))

    await asyncio.gather(sender(a, "ctrlb", "a", 0.0), sender(b, "ctrla", "b", 0.5 / rate))
    drain_end = time.monotonic() + 5.0
    while pending and time.monotonic() < drain_end:
        await asyncio.sleep(0.05)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"samples": samples, "lost": sorted(pending.values()), "sent": sent}, f)
    for task in (a_task, b_task):
        task.cancel()
    for w in (a, b):
        with contextlib.suppress(Exception):
            w.write(b"QUIT :done\r\n")
            w.close()


def control_child(argv: list[str]) -> int:
    port, out, max_seconds, rate = int(argv[0]), argv[1], float(argv[2]), float(argv[3])
    asyncio.run(_control(port, out, max_seconds, rate))
    return 0


# -- the run -------------------------------------------------------------------------------------


async def attack(ctx: Ctx) -> tuple[list[RowResult], dict[str, Any]]:
    args = ctx.args
    phases: dict[str, Any] = {}
    log("setting up")
    t = time.monotonic_ns()
    await setup(ctx)
    phases["setup"] = (t, time.monotonic_ns())
    ka = asyncio.create_task(keepalive(ctx))
    try:
        await ctx.settle(2.0)
        log(f"idle baseline: {args.idle:.0f} s with only the control pair talking")
        c0, t0 = ctx.cpu.ns(), time.monotonic_ns()
        await asyncio.sleep(args.idle)
        c1, t1 = ctx.cpu.ns(), time.monotonic_ns()
        ctx.bg_rate = (c1 - c0) / (t1 - t0)
        phases["idle"] = (t0, t1)
        phases["idle_server_cores"] = ctx.bg_rate
        todo = rows(ctx)
        if args.only:
            wanted = re.compile(args.only)
            todo = [r for r in todo if r.key == "ping" or wanted.search(r.key)]
        covered = {verb for r in todo for verb in _verbs(r)}
        missing = [c for c in ctx.commands if c not in covered]
        if missing and not args.only:
            log(f"  commands with no row here: {', '.join(missing)}")
        phases["uncovered_commands"] = missing
        results = []
        a0 = time.monotonic_ns()
        for row in todo:
            res = await run_row(ctx, row)
            results.append(res)
            stall = max((s.wall_ns / 1e9 for s in res.samples), default=0.0)
            if stall > 0.5:
                # The control users' lines read all at once when the server came back took
                # their flood tokens all at once: let that fake lag pass before the next row.
                await asyncio.sleep(min(4.0, 1.0 + stall))
            raw = [s.cpu_ns / 1e6 for s in res.samples]
            log(
                f"  {row.key:<20} n={len(raw)} raw CPU max {max(raw, default=math.nan):8.2f} ms"
                f"{'  ' + res.error if res.error else ''}"
            )
        phases["attack"] = (a0, time.monotonic_ns())
        if args.hash_conns and time.monotonic() < ctx.deadline:
            log("hashes one address can force")
            try:
                one = await hash_rate(ctx, 1, args.hash_each, args.hash_seconds)
                many = await hash_rate(ctx, args.hash_conns, args.hash_each, args.hash_seconds)
                phases["hashes"] = {"one": one, "many": many}
            except (TimeoutError, ConnectionError, OSError) as exc:
                log(f"  the hash test failed: {type(exc).__name__}: {exc}")
        return results, phases
    finally:
        ka.cancel()


def _verbs(row: Row) -> set[str]:
    """The commands a row exercises (to list the commands no row exercises)."""
    extra = {"register": {"CAP", "NICK", "USER"}, "pass-wrong": {"PASS"}, "kill": {"KILL"}}
    found = set(extra.get(row.key, ()))
    texts = [row.label]
    if isinstance(row.line, (str, bytes)):
        texts.append(row.line.decode(errors="replace") if isinstance(row.line, bytes) else row.line)
    for text in texts:
        words = [w for w in text.split(" ") if not w.startswith("@")]
        verb = re.sub(r"[^A-Za-z]", "", words[0]).upper() if words else ""
        if verb == "PRIVMSG" and len(words) > 1 and words[1].lower() in ("nickserv", "chanserv"):
            verb = "NS"
        found.add(verb)
    return found


def analyse(
    results: list[RowResult], control: dict[str, Any], ctx: Ctx, phases: dict[str, Any]
) -> dict[str, Any]:
    samples = control.get("samples", [])
    lost = control.get("lost", [])
    bg = ctx.bg_rate
    net = {r.row.key: [s.cpu_ns - bg * (s.t2 - s.t0) for s in r.samples] for r in results}
    base = statistics.median(net["ping"]) if net.get("ping") else 0.0
    # Each control message belongs to the row during which it was sent: from the row's
    # start (its preparation included) to the next row's start.
    ends = [r.start for r in results[1:]] + [phases.get("attack", (0, 0))[1]]
    for r, end in zip(results, ends, strict=True):
        r.cpu_ms = [max(0.0, (v - base) / 1e6) for v in net[r.row.key]]
        r.lat_ms = [(b - a) / 1e6 for a, b in samples if r.start <= a < end]
        r.lost = sum(1 for a in lost if r.start <= a < end)

    def window(t0: int, t1: int) -> dict[str, Any]:
        lat = [(b - a) / 1e6 for a, b in samples if t0 <= a <= t1]
        return {
            "n": len(lat),
            "lost": sum(1 for a in lost if t0 <= a <= t1),
            "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99),
            "max_ms": max(lat, default=math.nan),
        }

    summary: dict[str, Any] = {
        "baseline_ping_cpu_ms": base / 1e6,
        "background_server_cores": bg,
    }
    row_at = list(zip([r.start for r in results], ends, [r.row.key for r in results], strict=True))
    first = phases.get("setup", (0, 0))[0]
    slowest = sorted(samples, key=lambda s: s[0] - s[1])[:15]
    summary["slowest_control"] = [
        {
            "sent_s": round((a - first) / 1e9, 3),
            "latency_ms": round((b - a) / 1e6, 2),
            "row": next((k for t0, t1, k in row_at if t0 <= a < t1), ""),
        }
        for a, b in slowest
    ]
    for name in ("setup", "idle", "attack"):
        if name in phases:
            summary[name] = window(*phases[name])
    hashes = phases.get("hashes")
    if hashes:
        for k in ("one", "many"):
            hashes[k]["control"] = window(hashes[k]["t0"], hashes[k]["t2"])
        summary["hashes"] = hashes
    return summary


def verdict(r: RowResult) -> str:
    if r.error and not r.samples:
        return "not measured"
    over = []
    # The median decides: one repetition may also pay for a garbage collection, or for
    # another process taking the core's cache; the max shows those.
    if r.cpu_ms and statistics.median(r.cpu_ms) > BUDGET_CPU_MS:
        over.append("CPU")
    p99 = pct(r.lat_ms, 0.99)
    if (r.lat_ms and p99 > BUDGET_P99_MS) or r.lost:
        over.append("latency")
    if not over:
        if r.cpu_ms and max(r.cpu_ms) > BUDGET_CPU_MS:
            return "ok (max over)"
        return "ok"
    why = "OVER: " + ", ".join(over)
    if r.row.kind == "scrypt" and over == ["CPU"]:
        why += " (scrypt, by design)"
    return why


def fmt(v: float, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def markdown(results: list[RowResult], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    def worst(r: RowResult) -> tuple[float, float]:
        return (max(r.cpu_ms, default=-1.0), pct(r.lat_ms, 0.99) if r.lat_ms else -1.0)

    out = [
        f"{meta['version']}; {meta['machine']}; {meta['members']} members in #big; "
        + ("127.0.0.1 treated as a remote address; " if meta.get("remote_address") else "")
        + f"flood control at its defaults ({FLOOD_BURST} at once, then {FLOOD_RATE:g}/s)",
        "",
        "| # | input | by | n | CPU ms median | CPU ms max | wall ms median | out KiB | "
        "control n | control p99 ms | control max ms | reply | verdict |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    ordered = sorted(results, key=worst, reverse=True)
    for i, r in enumerate(ordered, 1):
        walls = [s.wall_ns / 1e6 for s in r.samples]
        outs = [s.out_bytes / 1024 for s in r.samples]
        replies = sorted({x for s in r.samples for x in s.replies})[:2]
        label = r.row.label.replace("|", "\\|")
        if r.row.key in ("stats", "help") and r.samples and r.cpu_ms:
            worst_input = r.samples[r.cpu_ms.index(max(r.cpu_ms))].input
            label += f" (worst: `{worst_input}`)"
        if r.row.kind == "oper":
            label += " [operators only]"
        lat_n = f"{len(r.lat_ms)}" + (f" ({r.lost} lost)" if r.lost else "")
        out.append(
            f"| {i} | {label} | {r.row.sender} | {len(r.samples)} | "
            f"{fmt(statistics.median(r.cpu_ms) if r.cpu_ms else math.nan, 2)} | "
            f"{fmt(max(r.cpu_ms, default=math.nan), 2)} | "
            f"{fmt(statistics.median(walls) if walls else math.nan, 1)} | "
            f"{fmt(max(outs, default=math.nan), 1)} | {lat_n} | "
            f"{fmt(pct(r.lat_ms, 0.99), 1)} | {fmt(max(r.lat_ms, default=math.nan), 1)} | "
            f"{'; '.join(replies).replace('|', '/')} | {verdict(r)}"
            f"{' (' + r.error + ')' if r.error else ''} |"
        )
    out.append("")
    for name, what in (
        ("idle", "idle (control pair only)"),
        ("setup", "setup"),
        ("attack", "whole attack"),
    ):
        w = summary.get(name)
        if w:
            out.append(
                f"- control pair, {what}: {w['n']} messages, p50 {fmt(w['p50_ms'], 2)} ms, "
                f"p99 {fmt(w['p99_ms'], 1)} ms, max {fmt(w['max_ms'], 1)} ms, lost {w['lost']}"
            )
    out.append(
        f"- baseline: a bare PING costs {fmt(summary['baseline_ping_cpu_ms'], 3)} ms of server "
        f"CPU (taken off every row); the server idles at "
        f"{100 * summary['background_server_cores']:.2f}% of a core with the control pair "
        "talking (taken off in proportion to each row's time)"
    )
    hashes = summary.get("hashes")
    if hashes:
        for k in ("one", "many"):
            h = hashes[k]
            c = h["control"]
            out.append(
                f"- NS SET PASSWORD x{h['asked'] // h['connections']} at once from "
                f"{h['connections']} connection(s) of one address: {h['done']} of "
                f"{h['asked']} done in {h['seconds']:.2f} s"
                f"{'' if h['all_answered'] else ' (the limit: the rest was still waiting)'}"
                f" = {h['per_s']:.1f}/s, server {h['server_cores']:.2f} cores, "
                f"{fmt(h['cpu_ms_each'])} ms CPU each; control p99 "
                f"{fmt(c['p99_ms'], 1)} ms, max {fmt(c['max_ms'], 1)} ms"
                + (f"; {h['logins_refused']} logins refused" if h["logins_refused"] else "")
            )
    by_key = {r.row.key: r for r in results}
    for known, unknown, what in (
        ("oper-wrong", "oper-unknown", "OPER"),
        ("ns-identify-known", "ns-identify-unknown", "NS IDENTIFY"),
    ):
        k, u = by_key.get(known), by_key.get(unknown)
        if k and u and k.samples and u.samples and k.cpu_ms and u.cpu_ms:
            out.append(
                f"- timing: {what} with a name that exists and a wrong password answers in "
                f"{min(s.wall_ns for s in k.samples) / 1e6:.1f} ms at the fastest "
                f"({statistics.median(k.cpu_ms):.1f} ms CPU), with a name that does not in "
                f"{min(s.wall_ns for s in u.samples) / 1e6:.1f} ms "
                f"({statistics.median(u.cpu_ms):.1f} ms CPU)"
            )
    busy = [r.others_cores for r in results if not math.isnan(r.others_cores)]
    if busy:
        noisiest = max(
            results, key=lambda r: -1.0 if math.isnan(r.others_cores) else r.others_cores
        )
        out.append(
            f"- other processes on the machine used {statistics.mean(busy):.2f} of its "
            f"{os.cpu_count()} cores on average while the rows ran (at most "
            f"{noisiest.others_cores:.2f}, during {noisiest.row.key})"
        )
    over = [r for r in ordered if verdict(r).startswith("OVER")]
    out.append(
        f"- over budget (median CPU > {BUDGET_CPU_MS:g} ms, or control p99 > "
        f"{BUDGET_P99_MS:g} ms, or a control message lost): {len(over)} of {len(results)} inputs"
    )
    if summary.get("attack"):
        p99 = summary["attack"]["p99_ms"]
        out.append(
            f"\n**Control pair p99 over the whole attack: {fmt(p99, 1)} ms** "
            f"(target < {BUDGET_P99_MS:g} ms: {'met' if p99 < BUDGET_P99_MS else 'NOT met'})"
        )
    return "\n".join(out)


def to_json(r: RowResult) -> dict[str, Any]:
    def clean(v: float) -> float | None:
        return None if isinstance(v, float) and math.isnan(v) else v

    return {
        "key": r.row.key,
        "group": r.row.group,
        "input": r.row.label,
        "sender": r.row.sender,
        "kind": r.row.kind,
        "n": len(r.samples),
        "cpu_ms": [round(v, 4) for v in r.cpu_ms],
        "cpu_ms_median": clean(statistics.median(r.cpu_ms)) if r.cpu_ms else None,
        "cpu_ms_max": max(r.cpu_ms, default=None),
        "raw_cpu_ms": [round(s.cpu_ns / 1e6, 4) for s in r.samples],
        "wall_ms": [round(s.wall_ns / 1e6, 3) for s in r.samples],
        "out_bytes": [s.out_bytes for s in r.samples],
        "out_lines": [s.out_lines for s in r.samples],
        "replies": sorted({x for s in r.samples for x in s.replies}),
        "inputs": sorted({s.input for s in r.samples})[:60],
        "control_n": len(r.lat_ms),
        "control_p50_ms": clean(pct(r.lat_ms, 0.5)),
        "control_p99_ms": clean(pct(r.lat_ms, 0.99)),
        "control_max_ms": clean(max(r.lat_ms, default=math.nan)),
        "control_lost": r.lost,
        "others_cores": clean(r.others_cores),
        "verdict": verdict(r),
        "error": r.error,
    }


# -- processes ----------------------------------------------------------------------------------


def server_spec(src: str, workdir: Path, version: str, remote: bool = False) -> Any:
    from harness.servers import ServerSpec

    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "XDG_STATE_HOME": str(workdir / "state"),
        "XDG_CACHE_HOME": str(workdir / "cache"),
    }
    full_env = {**os.environ, **env}
    head = [sys.executable, "-m", "chatcli"]
    help_text = subprocess.run(
        [*head, "serve", "--help"], capture_output=True, text=True, timeout=60, env=full_env,
        check=False,
    ).stdout  # fmt: skip
    if "--db" not in help_text:
        raise SystemExit(f"chat serve --help from {src} lists no --db: cannot benchmark it")
    extra = ["--db", str(workdir / "chat.db")]
    if "--oper" in help_text:
        got = subprocess.run(
            [sys.executable, "-c", "import sys; from chatcli.passwords import hash_password; "
             "print(hash_password(sys.argv[1]))", OPER_PASS],
            capture_output=True, text=True, timeout=60, env=full_env, check=False,
        )  # fmt: skip
        if got.returncode == 0 and got.stdout.strip():
            extra += ["--oper", f"{OPER_NAME}:{got.stdout.strip()}"]
    if "--log-level" in help_text:
        extra += ["--log-level", "warning"]
    if remote and "--config" in help_text:
        # Loopback as any other address: only the limits on connections (and on accounts
        # registered) are lifted, which the benchmark's own clients would otherwise hit.
        settings = workdir / "settings.toml"
        settings.write_text(
            "exempt_loopback = false\nmax_per_ip = 0\nthrottle_connects = 0\naccount_limit = 0\n",
            encoding="utf-8",
        )
        extra += ["--config", str(settings)]
    return ServerSpec("chatcli", sys.executable, "", version=version, extra_args=tuple(extra),
                      env=env)  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The most expensive inputs we know for every command of chatcli's server: "
        "server CPU per command, and two other users' latency meanwhile.",
        epilog="A full run takes about 2 minutes; --quick under 1. "
        "`adversary.py --compare A.json B.json ...` puts the --json files of runs side by side.",
    )
    p.add_argument("--quick", action="store_true",
                   help="100 members, one repetition each, a smaller hash test")  # fmt: skip
    p.add_argument(
        "--chatcli-rev",
        help="benchmark chatcli as committed at this git revision "
        "(a `git archive` in a temporary directory) instead of the working tree",
    )
    p.add_argument("--chatcli-src", help="benchmark the chatcli package in this directory")
    p.add_argument("--json", type=Path, help="write the results as JSON to this file")
    p.add_argument("--markdown", type=Path, help="write the table as Markdown to this file")
    p.add_argument("--members", type=int, help="idle members of #big (default 300; quick 100)")
    p.add_argument("--reps", type=int, help="repetitions of each input (default 5; quick 1)")
    p.add_argument("--only", help="only the rows whose key matches this regular expression")
    p.add_argument(
        "--remote-address",
        action="store_true",
        help="treat 127.0.0.1 as a remote address (exempt_loopback off), lifting only the "
        "limits on connections and on accounts registered per address",
    )
    p.add_argument("--list", action="store_true", help="list the rows' keys and inputs, and exit")
    p.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        help="seconds one command may take before its row is abandoned",
    )
    p.add_argument(
        "--deadline",
        type=float,
        help="seconds after which rows not yet run are skipped (default 600; quick 150)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="first wait up to this many seconds for other processes to leave the "
        "CPU (as bench.py does; default 0)",
    )
    p.add_argument(
        "--no-hashes",
        action="store_true",
        help="leave out the test of how many hashes one address can force (8 to 16 s)",
    )
    p.add_argument(
        "--idle",
        type=float,
        help="seconds of the idle baseline, the control pair alone (default 3; quick 2)",
    )
    args = p.parse_args(argv)
    args.members = args.members or (100 if args.quick else 300)
    args.reps = args.reps or (1 if args.quick else 5)
    args.deadline = args.deadline or (150.0 if args.quick else 600.0)
    args.history_each = 16
    args.bans = 40 if args.quick else 100
    if args.idle is None:
        args.idle = 2.0 if args.quick else 3.0
    args.hash_conns = 0 if args.no_hashes else 4 if args.quick else 10
    args.hash_each = 5 if args.quick else 10
    args.hash_seconds = 4.0 if args.quick else 8.0
    return args


def wait_quiet(limit: float) -> float:
    """Wait (at most ``limit`` s) until other processes use less than 0.2 of a core."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        b0, m0 = box_busy_s(), sum(os.times()[:2])
        time.sleep(0.5)
        if (box_busy_s() - b0) - (sum(os.times()[:2]) - m0) < 0.1:
            break
    return time.monotonic() - start


def machine() -> str:
    import platform

    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


async def main_async(args: argparse.Namespace, port: int, pid: int, workdir: Path,
                     meta: dict[str, Any]) -> tuple[list[RowResult], dict[str, Any]]:  # fmt: skip
    ctx = Ctx(args, port, pid)
    if not ctx.cpu.precise:
        log("the per-process CPU clock is not readable: falling back to 10 ms ticks")
    out = workdir / "control.json"
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--control-child", str(port), str(out),
        str(args.deadline + 300), str(CONTROL_RATE),
        stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    ctx.control_pid = child.pid
    meta["control_pid"] = child.pid
    try:
        assert child.stdout is not None
        ready = await asyncio.wait_for(child.stdout.readline(), 40)
        if ready.strip() != b"ready":
            raise RuntimeError("the control pair did not start")
        results, phases = await attack(ctx)
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        for c in ctx.open_clients:
            c.close()
    control = json.loads(out.read_text()) if out.exists() else {"samples": [], "lost": []}
    summary = analyse(results, control, ctx, phases)
    summary["control_sent"] = control.get("sent", 0)
    summary["uncovered_commands"] = phases.get("uncovered_commands", [])
    return results, summary


def compare(paths: list[Path]) -> str:
    """Runs side by side (their --json files): CPU median and max and the control p99 of
    each input in each run, and the verdict of the last; worst first."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    by_run = [{r["key"]: r for r in d["rows"]} for d in docs]
    keys = list(dict.fromkeys(k for runs in by_run for k in runs))

    def worst(key: str) -> float:
        return max((runs[key]["cpu_ms_max"] or 0.0 for runs in by_run if key in runs), default=0)

    head = "| input |" + "".join(
        f" {_short(d['meta']['version'])}: CPU ms med / max | p99 ms |" for d in docs
    )
    out = [
        "Runs: " + "; ".join(
            f"{_short(d['meta']['version'])} ({d['meta']['started']}, "
            f"{d['meta']['members']} members, {d['meta']['reps']} reps)" for d in docs
        ),
        "",
        head + " verdict (last) |",
        "|---|" + "--:|--:|" * len(docs) + "---|",
    ]  # fmt: skip
    for key in sorted(keys, key=worst, reverse=True):
        cells = []
        row = next(runs[key] for runs in reversed(by_run) if key in runs)
        label = row["input"] + (" [operators only]" if row["kind"] == "oper" else "")
        last = ""
        for runs in by_run:
            r = runs.get(key)
            if r is None or not r["n"]:
                cells.append(" - | - |")
                continue
            cells.append(
                f" {fmt(r['cpu_ms_median'], 2)} / {fmt(r['cpu_ms_max'], 2)} | "
                f"{fmt(r['control_p99_ms'] if r['control_p99_ms'] is not None else math.nan)} |"
            )
            last = r["verdict"]
        out.append(f"| {label.replace('|', '/')} |{''.join(cells)} {last} |")
    out.append("")
    for d in docs:
        a = d["summary"].get("attack") or {}
        out.append(
            f"- {_short(d['meta']['version'])}: control p99 over the whole attack "
            f"{fmt(a.get('p99_ms') if a.get('p99_ms') is not None else math.nan)} ms, max "
            f"{fmt(a.get('max_ms') if a.get('max_ms') is not None else math.nan)} ms"
        )
    return "\n".join(out)


def _short(version: str) -> str:
    """'chatcli 8b56c11 (git archive of 8b56c11)' -> '8b56c11'."""
    words = version.replace("chatcli", "").split()
    return words[0] if words else version


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--control-child"]:
        return control_child(argv[1:])
    if argv[:1] == ["--compare"]:
        print(compare([Path(p) for p in argv[1:]]))
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    from harness.machine import raise_nofile
    from harness.servers import (
        REPO,
        RunningServer,
        chatcli_version,
        chatcli_version_at,
        extract_revision,
    )

    if args.quiet_wait:
        log(f"waited {wait_quiet(args.quiet_wait):.1f} s for the CPU to be quiet")
    raise_nofile(args.members + 200)
    scratch = tempfile.TemporaryDirectory(prefix="chatadv-")
    try:
        workdir = Path(scratch.name)
        if args.chatcli_rev:
            src = extract_revision(args.chatcli_rev, workdir / "rev")
            version = chatcli_version_at(args.chatcli_rev)
        elif args.chatcli_src:
            src, version = args.chatcli_src, f"chatcli from {args.chatcli_src}"
        else:
            src, version = str(REPO / "src"), chatcli_version()
        spec = server_spec(src, workdir, version, args.remote_address)
        meta = {
            "version": version,
            "machine": machine(),
            "members": args.members,
            "reps": args.reps,
            "quick": args.quick,
            "remote_address": args.remote_address,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "load_average": os.getloadavg()[0],
            "budget": {"cpu_ms": BUDGET_CPU_MS, "control_p99_ms": BUDGET_P99_MS},
        }
        if args.list:
            dummy = argparse.Namespace(**{**vars(args), "quick": args.quick})
            ctx = Ctx(dummy, 0, os.getpid())
            for r in rows(ctx):
                print(f"{r.key:<22} {r.group:<13} {r.sender:<4} {r.label}")
            return 0
        log(f"{meta['started']}  {version}; {meta['machine']}; load {meta['load_average']:.2f}")
        t0 = time.monotonic()
        with RunningServer(spec, workdir) as srv:
            meta["server_pid"] = srv.pid
            results, summary = asyncio.run(main_async(args, srv.port, srv.pid, workdir, meta))
            if not srv.alive():
                log(f"the server died: {srv.log_tail()}")
            meta["server_log_tail"] = srv.log_tail(3)
        meta["seconds"] = time.monotonic() - t0
        table = markdown(results, summary, meta)
        print(table)
        if args.markdown:
            args.markdown.write_text(table + "\n", encoding="utf-8")
        if args.json:
            doc = {"meta": meta, "summary": summary, "rows": [to_json(r) for r in results]}
            args.json.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
        log(f"done in {meta['seconds']:.0f} s")
        return 0
    except KeyboardInterrupt:
        log("interrupted: the server and the clients are stopped")
        return 130
    finally:
        _kill_control(meta.get("control_pid") if "meta" in locals() else None)
        scratch.cleanup()


def _kill_control(pid: int | None) -> None:
    """The control process, if it outlived an interrupted run."""
    if pid is None:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"--control-child" not in f.read():
                return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


def _json_default(v: object) -> object:
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
