"""The interpreter: runs one parsed script against one target.

It does what packetdrill's run.c / run_packet.c / run_system_call.c do:

- times: absolute, ``+relative`` (to the live time the previous event
  finished, or to the previous packet's script time between two inbound
  packets), ``*``, ranges; tolerance = max(--tolerance_usecs, 12.5% of the
  time since the previous event), as packetdrill computes it;
- inbound packets are sent at their time, mapped to live sequence numbers;
- an outbound line takes the next packet the stack sent on the flow under
  test (other flows are ignored), waiting up to its time plus tolerance;
  consecutive packets are merged while the script's payload is longer (as
  packetdrill aggregates TSO/GSO segments); the packet is compared in script
  space (``compare``) and its time judged;
- system calls run at their time; ``t1...t2 call()`` blocks while later
  events run and must return at t2;
- ``%{ }%`` Python runs with the tcp_info of the socket under test;
- backquoted lines become sysctl settings (``commands``) or SKIP.

The socket under test follows packetdrill's states: a new one for each
``socket()``; an inbound packet to a listener makes a passive child with a
fresh remote port; an outbound SYN after ``connect()`` makes the active one.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tcpstack.drill.commands import read_shell_line
from tcpstack.drill.compare import compare, expected_packet
from tcpstack.drill.model import (
    Code,
    Command,
    Ellipsis_,
    Event,
    Int,
    PacketSpec,
    Script,
    SyscallSpec,
    TimeKind,
    Unparsed,
)
from tcpstack.drill.packets import (
    ACK,
    FIN,
    PSH,
    SYN,
    WirePacket,
    build_ip_tcp,
    flags_from_letters,
    options_from_spec,
    packet_text,
    parse_ip_tcp,
)
from tcpstack.drill.report import Result, Status
from tcpstack.drill.seqmap import SeqMap
from tcpstack.drill.symbols import (
    CODE_SYMBOLS,
    EvalError,
    errno_name,
    errno_number,
    evaluate,
)
from tcpstack.drill.target import BLOCK, CallHandle, Env, Fail, Flow, Outcome, Skip, Target
from tcpstack.wire.addr import canonical_addr

DEFAULT_TOLERANCE_PERCENT = 12.5
FIRST_REMOTE_PORT = 40000
_IGNORED_OPTIONS = {"ip_version", "tolerance_usecs", "tolerance_percent", "mtu", "bind_port",
                    "connect_port", "tcp_ts_tick_usecs", "local_ip", "remote_ip", "define",
                    "strict_segments"}


# packetdrill's socket states (socket.h)
NEW, LISTENING, PASSIVE_RCVD, PASSIVE_SYNACK_SENT, PASSIVE_ACKED = range(5)
ACTIVE_CONNECTING, ACTIVE_SYN_SENT, ACTIVE_SYN_ACKED = range(5, 8)


@dataclass
class Track:
    """One socket as packetdrill tracks it: script fd, state, live flow, mapping."""

    fd: int | None
    state: int = NEW
    flow: Flow | None = None
    seq: SeqMap = field(default_factory=SeqMap)


@dataclass
class Pending:
    event: Event
    spec: SyscallSpec
    handle: CallHandle
    start_us: int
    end_us: int


class Engine:
    def __init__(self, script: Script, target: Target, *, strict: bool = True,
                 verbose: bool = False, tolerance_usecs: int | None = None,
                 log: Callable[[str], None] = print, remote_port: int = FIRST_REMOTE_PORT,
                 ip_version: str | None = None, mtu: int | None = None) -> None:
        self.script = script
        self.target = target
        self.strict = strict
        self.verbose = verbose
        self.log = log
        self.cli_tolerance = tolerance_usecs
        self.cli_ip_version = ip_version      # packetdrill's --ip_version, over the script's
        self.cli_mtu = mtu                    # for scripts that set no --mtu
        self.notes: list[str] = []
        self.differences: list[str] = []
        self.tracks: list[Track] = []
        self.sut: Track | None = None          # the socket under test
        self.next_remote_port = remote_port
        self.pending: Pending | None = None
        self.last_event: Event | None = None
        self.last_time_us = 0                  # script time of the last event
        self.event_us = 0                      # script time of the current event
        self.code_ns: dict[str, object] = {}
        self.events_run = 0
        self.env = Env()
        self.tolerance_us = target.default_tolerance_usecs
        self.tolerance_percent = DEFAULT_TOLERANCE_PERCENT
        self.ts_tick_usecs = 0

    # -- the run --------------------------------------------------------------
    def run(self) -> Result:
        started = _time.monotonic()
        script = self.script
        result = Result(script.path, Status.PASS)
        try:
            self._check_script()
            self.target.begin(self.env)
            try:
                if script.init_command is not None:
                    self._command(script.init_command, 0)
                self.target.start_clock()
                for event in script.events:
                    self._run_event(event)
                self._finish_pending(final=True)
            finally:
                try:
                    if script.cleanup_command is not None:
                        self._command(script.cleanup_command, 0)
                finally:
                    self.target.finish()
        except Skip as exc:
            result = Result(script.path, Status.SKIP, exc.line, exc.reason)
        except Fail as exc:
            result = Result(script.path, Status.FAIL, exc.line, exc.message, exc.details)
        except Exception as exc:   # a bug in the drill: one result, not a traceback
            line = self.last_event.line if self.last_event is not None else 0
            result = Result(script.path, Status.FAIL, line,
                            f"internal error in the drill: {type(exc).__name__}: {exc}")
            if self.verbose:
                import traceback
                result.details = traceback.format_exc().rstrip().split("\n")
        result.notes = self.notes + result.notes
        result.differences = self.differences
        result.events = self.events_run
        result.seconds = _time.monotonic() - started
        return result

    def _check_script(self) -> None:
        script = self.script
        if script.skip is not None:
            raise Skip(script.skip, script.skip_line)
        for event in script.events:
            if isinstance(event.action, Unparsed):
                raise Skip(event.action.reason, event.line)
            if isinstance(event.action, PacketSpec) and event.action.unsupported:
                raise Skip(event.action.unsupported, event.line)
        version = self.cli_ip_version
        if version is None:
            version = next((o.value or "" for o in script.options if o.name == "ip_version"), "")
        if version == "ipv6":
            self.env.use_ipv6()
        elif version not in ("ipv4", ""):
            raise Skip(f"--ip_version={version}: ipv4 and ipv6 are supported (not the "
                       "IPv4-mapped ipv4-mapped-ipv6)")
        for opt in script.options:
            value = opt.value or ""
            try:
                if opt.name == "tolerance_usecs":
                    self.tolerance_us = int(value)
                elif opt.name == "tolerance_percent":
                    self.tolerance_percent = float(value)
                elif opt.name == "mtu":
                    self.env.mtu = int(value)
                elif opt.name == "bind_port":
                    self.env.bind_port = int(value)
                elif opt.name == "connect_port":
                    self.env.connect_port = int(value)
                elif opt.name == "tcp_ts_tick_usecs":
                    self.ts_tick_usecs = int(value)
                elif opt.name in ("local_ip", "remote_ip"):
                    if canonical_addr(value) != getattr(self.env, opt.name):
                        raise Skip(f"--{opt.name}={value}: the drill uses packetdrill's default "
                                   f"addresses only", opt.line)
                elif opt.name not in _IGNORED_OPTIONS:
                    self.notes.append(f"line {opt.line}: option --{opt.name} ignored")
            except ValueError:
                raise Skip(f"bad value for --{opt.name}: {value!r}", opt.line) from None
        if self.cli_tolerance is not None:
            self.tolerance_us = max(self.tolerance_us, self.cli_tolerance)
        if self.cli_mtu is not None and not any(o.name == "mtu" for o in script.options):
            self.env.mtu = self.cli_mtu          # a default: a script's own --mtu counts

    def _say(self, text: str) -> None:
        if self.verbose:
            self.log(f"  {self.target.now():9.6f} {text}")

    # -- times ----------------------------------------------------------------------
    def _now_us(self) -> int:
        return round(self.target.now() * 1e6)

    def _resolve(self, event: Event) -> tuple[int, int | None]:
        """(script time, end time or None) of ``event`` in microseconds."""
        t = event.time
        if t.kind in (TimeKind.ABSOLUTE, TimeKind.ABSOLUTE_RANGE):
            return t.usecs, t.end_usecs
        if t.kind is TimeKind.ANY:
            return self._now_us(), None
        if self.last_event is not None and _inbound(self.last_event) and _inbound(event):
            offset = self.last_time_us
        else:
            offset = self._now_us()
        end = offset + t.end_usecs if t.end_usecs is not None else None
        return offset + t.usecs, end

    def _tolerance(self, script_us: int, since_us: int | None = None) -> int:
        base = self.last_time_us if since_us is None else since_us
        dynamic = int(self.tolerance_percent / 100.0 * max(0, script_us - base))
        return max(self.tolerance_us, dynamic)

    def _judge_time(self, what: str, event: Event, script_us: int, end_us: int | None,
                    actual_us: int, since_us: int | None = None,
                    details: list[str] | None = None) -> None:
        if event.time.kind is TimeKind.ANY:
            return
        tol = self._tolerance(script_us, since_us)
        hi = end_us if end_us is not None else script_us
        if script_us - tol <= actual_us <= hi + tol:
            return
        if end_us is not None:
            msg = (f"timing error: expected {what} in time range {script_us / 1e6:.6f}~"
                   f"{end_us / 1e6:.6f} sec but happened at {actual_us / 1e6:.6f} sec")
        else:
            msg = (f"timing error: expected {what} at {script_us / 1e6:.6f} sec but happened "
                   f"at {actual_us / 1e6:.6f} sec; tolerance {tol / 1e6:.6f} sec")
        if self.strict:
            raise Fail(msg, event.line, details)
        self.differences.append(f"line {event.line}: {msg}")

    # -- events -----------------------------------------------------------------
    def _run_event(self, event: Event) -> None:
        try:
            self._run_event_at(event)
        except (Skip, Fail) as exc:
            if not exc.line:
                exc.line = event.line
            raise

    def _run_event_at(self, event: Event) -> None:
        self._check_pending()
        script_us, end_us = self._resolve(event)
        self.event_us = script_us
        if self.last_event is not None and event.time.kind is TimeKind.ABSOLUTE and \
                self.last_event.time.kind is TimeKind.ABSOLUTE and script_us < self.last_time_us:
            raise Skip(f"time goes backward in script from {self.last_time_us} usec to "
                       f"{script_us} usec", event.line)
        action = event.action
        self._say(f"line {event.line}: {event.text}")
        if isinstance(action, PacketSpec):
            if action.inbound:
                self._wait_for(event, script_us)
                self._inbound(event, action)
            else:
                self._outbound(event, action, script_us, end_us)
        elif isinstance(action, SyscallSpec):
            self._wait_for(event, script_us)
            self._syscall(event, action, script_us)
        elif isinstance(action, Command):
            self._wait_for(event, script_us)
            self._command(action, event.line)
        elif isinstance(action, Code):
            self._wait_for(event, script_us)
            self._code(event, action)
        self.last_event = event
        self.last_time_us = script_us
        self.events_run += 1

    def _wait_for(self, event: Event, script_us: int) -> None:
        self.target.advance(script_us / 1e6)
        self._check_pending()
        if self.events_run:
            self._judge_time("event" if not isinstance(event.action, PacketSpec)
                             else "inbound packet", event, script_us, None, self._now_us())

    # -- packets ------------------------------------------------------------------
    def _new_remote_port(self) -> int:
        port = self.next_remote_port
        self.next_remote_port += 1
        return port

    def _inbound(self, event: Event, spec: PacketSpec) -> None:
        sut = self.sut
        if sut is None or sut.state == LISTENING:
            # handle_listen_for_script_packet: a child socket for this packet.
            child = Track(None, PASSIVE_RCVD,
                          Flow(spec.dst_port or self.env.bind_port,
                               spec.src_port or self._new_remote_port()))
            child.seq.remote_isn = spec.seq
            self.tracks.append(child)
            self.sut = sut = child
        elif sut.state == PASSIVE_SYNACK_SENT and spec.flag("."):
            sut.state = PASSIVE_ACKED
        elif sut.state == ACTIVE_SYN_SENT and spec.flag("S") and spec.flag("."):
            sut.state = ACTIVE_SYN_ACKED
            sut.seq.remote_isn = spec.seq
        if sut.flow is None or not sut.flow.local_port:
            raise Skip("an inbound packet for a connection whose local port is not known "
                       "yet (no SYN seen)", event.line)
        try:
            options = options_from_spec(spec.options or ())
        except ValueError as exc:
            raise Skip(str(exc), event.line) from None
        script_pkt = WirePacket(self.env.remote_ip, self.env.local_ip,
                                spec.src_port or sut.flow.remote_port,
                                spec.dst_port or sut.flow.local_port,
                                spec.seq, spec.ack or 0, flags_from_letters(spec.flags),
                                spec.window or 0, spec.urgent, options, bytes(spec.payload_len))
        live = sut.seq.inbound(script_pkt)
        self._say(f"inbound {packet_text('<', live)}")
        self.target.inject(build_ip_tcp(live))

    def _matches(self, pkt: WirePacket) -> Track | None:
        sut = self.sut
        if sut is None or pkt.src != self.env.local_ip:
            return None
        flow = sut.flow
        if flow is not None and flow.local_port and pkt.src_port == flow.local_port and \
                pkt.dst_port == flow.remote_port and pkt.dst == self.env.remote_ip:
            return sut
        if sut.state == ACTIVE_SYN_SENT and pkt.has(SYN) and not pkt.has(ACK) and \
                pkt.dst == self.env.remote_ip and pkt.dst_port == self.env.connect_port:
            sut.flow = Flow(pkt.src_port, pkt.dst_port)   # find_connect_for_live_packet
            sut.seq.live_local_isn = pkt.seq
            return sut
        return None

    def _sniff(self, deadline: float, event: Event, spec: PacketSpec) -> tuple[float, WirePacket]:
        while True:
            got = self.target.next_packet(deadline)
            self._check_pending()
            if got is None:
                raise Fail(f"expected outbound packet not sent by {deadline:.6f} sec "
                           f"(now {self.target.now():.6f})", event.line,
                           [f"script packet: {self.event_us / 1e6:9.6f} {spec}"])
            when, raw = got
            pkt = parse_ip_tcp(raw)
            if pkt is None:
                self._say("ignored a packet that is not TCP")
                continue
            if self._matches(pkt) is None:
                self._say(f"ignored {packet_text('>', pkt)} ({pkt.src}:{pkt.src_port} > "
                          f"{pkt.dst}:{pkt.dst_port}: not the connection under test)")
                continue
            return when, pkt

    def _outbound(self, event: Event, spec: PacketSpec, script_us: int,
                  end_us: int | None) -> None:
        sut = self.sut
        if sut is None:
            raise Fail("no matching socket for script packet", event.line)
        if sut.state == PASSIVE_RCVD and spec.flag("S") and spec.flag("."):
            sut.seq.script_local_isn = spec.seq
        elif sut.state == ACTIVE_CONNECTING and spec.flag("S") and not spec.flag("."):
            sut.state = ACTIVE_SYN_SENT        # handle_connect_for_script_packet
            sut.seq.script_local_isn = spec.seq
        if event.time.kind is TimeKind.ANY:
            deadline = self.target.now() + self.target.any_time_wait
        else:
            hi = end_us if end_us is not None else script_us
            deadline = (hi + self._tolerance(script_us)) / 1e6
            if not self.strict:
                deadline += 3.0
        when, live = self._sniff(deadline, event, spec)
        if sut.state == PASSIVE_RCVD and spec.flag("S") and spec.flag("."):
            sut.state = PASSIVE_SYNACK_SENT
            sut.seq.live_local_isn = live.seq
        # Aggregate consecutive segments while the script expects more payload.
        first_when = when
        while len(live.payload) < spec.payload_len:
            try:
                _, more = self._sniff(deadline, event, spec)
            except Fail:
                break
            if more.seq != (live.seq + len(live.payload)) & 0xFFFFFFFF:
                self.notes.append(f"line {event.line}: packet not merged (not contiguous): "
                                  f"{packet_text('>', more)}")
                break
            live = replace(more, seq=live.seq, payload=live.payload + more.payload,
                           flags=(live.flags & ~(FIN | PSH)) | more.flags)
        script_ts = next((o.values for o in (spec.options or ()) if o.kind == "TS"), None)
        actual = sut.seq.outbound(live, script_ts)   # type: ignore[arg-type]
        self._say(f"outbound {packet_text('>', live)}")
        expected = expected_packet(spec, actual)
        details = [f"script packet: {script_us / 1e6:9.6f} {packet_text('>', expected)}",
                   f"actual packet: {first_when:9.6f} {packet_text('>', actual)}"]
        verdict = compare(spec, actual, strict=self.strict, ts_tick_usecs=self.ts_tick_usecs,
                          tolerance_usecs=self.tolerance_us)
        if not verdict.ok:
            raise Fail(verdict.errors[0], event.line, verdict.errors[1:] + details)
        for note in verdict.notes:
            self.differences.append(f"line {event.line}: {note}")
        self._judge_time("outbound packet", event, script_us, end_us,
                         round(first_when * 1e6), details=details)
        if event.time.kind is TimeKind.ANY:
            self.event_us = round(first_when * 1e6)

    # -- system calls -----------------------------------------------------------------
    def _eval_args(self, event: Event, spec: SyscallSpec) -> list[object]:
        try:
            return [evaluate(a) for a in spec.args]
        except EvalError as exc:
            raise Skip(f"{spec.name}: {exc}", event.line) from None

    def _expected(self, event: Event, spec: SyscallSpec) -> int | None:
        if isinstance(spec.result, Int):
            return spec.result.value
        if isinstance(spec.result, Ellipsis_):
            return None
        try:
            value = evaluate(spec.result)
        except EvalError as exc:
            raise Skip(f"{spec.name}: result {exc}", event.line) from None
        if not isinstance(value, int):
            raise Skip(f"{spec.name}: result {spec.result} is not a number", event.line)
        return value

    def _syscall(self, event: Event, spec: SyscallSpec, script_us: int) -> None:
        args = self._eval_args(event, spec)
        expected = self._expected(event, spec)
        if spec.name == "connect" and args and isinstance(args[0], int):
            # run_syscall_connect: the socket is connecting before the call returns.
            track = next((t for t in self.tracks if t.fd == args[0]), None)
            if track is not None and track.state == NEW:
                track.state = ACTIVE_CONNECTING
                track.flow = Flow(0, self.env.connect_port)
        if spec.blocking:
            if self.pending is not None:
                self._finish_pending(final=True)
            end_us = spec.end_usecs or 0
            if event.time.kind is TimeKind.RELATIVE:
                end_us += script_us - event.time.usecs
            handle = self.target.start_blocking(spec.name, args, expected)
            self.pending = Pending(event, spec, handle, script_us, end_us)
            self._say(f"{spec.name}() started (blocking until {end_us / 1e6:.6f})")
            self._check_pending()
            return
        outcome = self.target.syscall(spec.name, args, expected)
        if outcome is BLOCK:
            raise Fail(f"{spec.name}() would block here and the script does not say "
                       f"...END (packetdrill would hang)", event.line)
        assert isinstance(outcome, Outcome)
        self._check_outcome(event, spec, args, expected, outcome)

    def _check_pending(self) -> None:
        pending = self.pending
        if pending is None or not pending.handle.done:
            return
        self.pending = None
        handle = pending.handle
        self._say(f"{pending.spec.name}() returned at {handle.end_time:.6f}")
        actual_us = round(handle.end_time * 1e6)
        self._judge_time("system call return", pending.event, pending.end_us, None, actual_us,
                         since_us=pending.start_us)
        assert handle.outcome is not None
        self._check_outcome(pending.event, pending.spec,
                            self._eval_args(pending.event, pending.spec),
                            self._expected(pending.event, pending.spec), handle.outcome)

    def _finish_pending(self, final: bool) -> None:
        if self.pending is None:
            return
        self.target.advance(self.target.now() + 1.0)
        self._check_pending()
        if self.pending is not None:
            line = self.pending.event.line
            raise Fail(f"{self.pending.spec.name}() still blocked: "
                       f"{'exiting' if final else 'another blocking call started'} while a "
                       f"blocking system call is in progress", line)

    def _check_outcome(self, event: Event, spec: SyscallSpec, args: list[object],
                       expected: int | None, outcome: Outcome) -> None:
        name = spec.name
        self._say(f"{name}() = {outcome.result}"
                  + (f" {errno_name(outcome.errno)}" if outcome.result < 0 else ""))
        fd_result = name in ("socket", "accept")
        if expected is not None:
            if fd_result and expected >= 0:
                if outcome.result < 0:
                    raise Fail(f"{name}: expected non-negative result but got {outcome.result} "
                               f"with errno {outcome.errno} ({errno_name(outcome.errno)})",
                               event.line)
            elif outcome.result != expected:
                raise Fail(f"{name}: expected result {expected} but got {outcome.result} with "
                           f"errno {outcome.errno} ({errno_name(outcome.errno)})", event.line)
        if spec.errno is not None:
            want = errno_number(spec.errno)
            if want is None:
                raise Skip(f"unknown errno {spec.errno}", event.line)
            if outcome.errno != want:
                raise Fail(f"{name}: expected errno {want} ({spec.errno}) but got "
                           f"{outcome.errno} ({errno_name(outcome.errno)})", event.line)
        value_at = {"getsockopt": 3, "ioctl": 2}.get(name)
        if value_at is not None and len(args) > value_at and outcome.result == 0:
            want_value = args[value_at]
            if isinstance(want_value, list) and len(want_value) == 1:
                want_value = want_value[0]
            if want_value is not ... and outcome.value is not None and \
                    want_value != outcome.value:
                raise Fail(f"{name}: bad value: expected: {want_value} actual: "
                           f"{outcome.value}", event.line)
        self._track_call(event, name, args, expected, outcome)

    def _track_call(self, event: Event, name: str, args: list[object], expected: int | None,
                    outcome: Outcome) -> None:
        """packetdrill's bookkeeping of sockets after a successful call."""
        if name == "socket" and outcome.result >= 0:
            track = Track(expected if expected is not None and expected >= 0 else outcome.result)
            self.tracks.append(track)
            self.sut = track
            return
        fd = args[0] if args and isinstance(args[0], int) else None
        track = next((t for t in self.tracks if t.fd == fd), None)
        if name == "listen" and outcome.result == 0 and track is not None:
            track.state = LISTENING
        elif name == "accept" and outcome.result >= 0:
            child = next((t for t in reversed(self.tracks)
                          if t.fd is None and t.state in (PASSIVE_SYNACK_SENT, PASSIVE_ACKED,
                                                          PASSIVE_RCVD)), None)
            if child is None:
                raise Fail("unable to find socket matching accept() call", event.line)
            child.fd = expected if expected is not None and expected >= 0 else outcome.result
        elif name == "close" and track is not None:
            track.fd = -1

    # -- commands and code ----------------------------------------------------------------
    def _command(self, command: Command, line: int) -> None:
        shell = read_shell_line(command.text)
        if shell.unsupported:
            raise Skip(shell.unsupported, line)
        if shell.sysctls:
            where = f"line {line}" if line else "command"
            for note in self.target.apply_sysctls(shell.sysctls, line):
                self.notes.append(f"{where}: {note}")
        self._say(f"command `{command.text}` done")

    def _code(self, event: Event, code: Code) -> None:
        track = self.sut
        fd = track.fd if track is not None and track.fd is not None and track.fd >= 0 else None
        info = self.target.tcp_info(fd, track.flow if track is not None else None)
        ns = self.code_ns
        ns.update(CODE_SYMBOLS)
        ns.update(info)
        try:
            compiled = compile(code.text, f"{self.script.path}:{event.line}", "exec")
        except SyntaxError as exc:
            raise Skip(f"Python code does not compile under Python 3 ({exc.msg})",
                       event.line) from None
        try:
            exec(compiled, ns)   # packetdrill runs these snippets with python3 too
        except AssertionError as exc:
            shown = {k: v for k, v in info.items() if k in code.text}
            raise Fail(f"assertion failed in Python code: {code.text}"
                       + (f" ({exc})" if str(exc) else ""), event.line,
                       [f"{k} = {v}" for k, v in sorted(shown.items())]) from None
        except NameError as exc:
            raise Skip(f"Python code uses a name this target does not provide ({exc})",
                       event.line) from None
        except Exception as exc:
            raise Fail(f"error in Python code: {type(exc).__name__}: {exc}",
                       event.line) from None


def _inbound(event: Event) -> bool:
    return isinstance(event.action, PacketSpec) and event.action.inbound
