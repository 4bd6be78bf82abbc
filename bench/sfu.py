"""The relay side by side with Janus 1.1.2's VideoRoom (the C SFU), same aiortc load.

    .venv/bin/python bench/sfu.py                    # quiet: J Y J Y J Y at 4, 12, 24 pairs
    .venv/bin/python bench/sfu.py --contention       # a CPU hog per core, 12 pairs
    .venv/bin/python bench/sfu.py --quick            # smoke check: one round each, 4 pairs
    .venv/bin/python bench/sfu.py --profile 30 --n 24   # py-spy profile of the relay

Needs ``apt-get install -y janus`` and ``unshare``/``ip`` (util-linux, iproute2). The bench
re-executes itself in a private network namespace (``unshare --net``; as a non-root user
``unshare --map-root-user --net``): Janus never gathers ICE candidates on a loopback
interface, so the namespace gets a veth interface (``jv0``, 10.254.0.1) that only it can
reach; every peer, Janus, Yunkan's relay and the load generator, gathers on that address,
and the kernel carries the traffic through its loopback path as for 127.0.0.1. Nothing it
starts is reachable from outside, and /proc/net/snmp there counts only this bench's UDP.

Load (the same for both servers, from ``bench/relay.py`` and ``bench/_loadgen.py``): 10 s of
camera-like 640x480 VP8 (~1 Mbit/s, 30 fps) and Opus, encoded once (cached in ``--media``)
and replayed by every publisher (``LoopTrack``; a PLI restarts it at its key frame); 1:1
pairs, one room per pair; subscribers count frames by RTP marker bit (``count_lightly``).
Yunkan is ``bench/relay.py``'s JSON-lines server in ``node`` mode (rooms from one
``signaling.relay.Relay``, as a ``yunkan serve`` node makes them, admission included);
Janus is driven over its HTTP API (``bench/_janus.py``).

A round: a fresh server process, every pair joined one after the other, ``--warmup`` s,
one ``--window`` s window. Figures: server user+sys CPU (/proc, all threads) per forwarded
A+V stream; fps per subscriber; datagrams the kernel dropped for full receive buffers
(/proc/net/snmp ``RcvbufErrors`` of the namespace); RTCP the server sent to the publishers
(REMB per second per publisher, lowest and median REMB bitrate); connections that went
``failed``/``closed`` (load generator's view); time from a pair's first signaling message
to its subscriber's first frame; pairs refused at admission (a ``node_busy`` error from the
relay; Janus has no admission control); machine load average. Quiet rounds alternate
J Y J Y … per N; a round is invalid (kept, left out of the medians, re-run ``--retries``
times) when a subscriber has no video, the median fps is under 27 or the lowest under 20,
or the load generator used > 85 % of a core. ``--contention`` first runs one quiet J Y
pair of rounds (the REMB reference), then starts ``python -c 'while 1: pass'`` on every
core for the rest of the run and alternates ``--order`` there; every contention round
counts. ``--profile S`` runs one Yunkan round at the first ``--n`` and records the relay
with py-spy for S s from the start of its window (``bench/pyspy_summary.py`` prints the
breakdown; the window is S s unless ``--window`` says otherwise).
A table, then one JSON line; ``--json-out`` keeps every round. ``--renice N`` (e.g. -10
on a shared machine) sets the nice value of the bench's own session autogroup, so that
every process it starts gets the same, larger share of the CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import relay as bench  # noqa: E402  (bench/relay.py)
from _janus import Janus, JanusServer, write_config  # noqa: E402
from _loadgen import TICK, ChildServer, LoopTrack, ServerError  # noqa: E402
from _sfustats import contention_summary, quiet_summary, table  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.rtp import unpack_remb_fci  # noqa: E402
from pyspy_summary import report, summarise  # noqa: E402

from signaling.client import MediaClient  # noqa: E402
from signaling.packets import route_keyframe_requests  # noqa: E402

NETNS_ENV = "YUNKAN_SFU_NETNS"
VETH, VETH_ADDRESS = "jv0", "10.254.0.1"
LOOPBACK = (VETH_ADDRESS,)
bench.LOOPBACK = LOOPBACK  # bench.join()'s clients and bench.serve()'s rooms gather here
SLOW_JOIN = 10.0  # seconds from a pair's first signaling message to its first frame
JOIN_WAIT = 60.0  # how long a pair's first frame is waited for
STARTED: list[subprocess.Popen[bytes]] = []


def log(*args: Any) -> None:
    print(*args, flush=True, file=sys.stderr)


# ------------------------------------------------------------------ the namespace


def enter_namespace() -> int:
    """Run this script again in a private network namespace (see the module docstring),
    in a session of its own (its own scheduler autogroup, for ``--renice``)."""
    if shutil.which("janus") is None:
        sys.exit("janus is not installed (apt-get install -y janus)")
    flags = ["--net"] if os.geteuid() == 0 else ["--map-root-user", "--net"]
    argv = ["unshare", *flags, "--", sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    child = subprocess.Popen(argv, env={**os.environ, NETNS_ENV: "1"}, start_new_session=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: child.send_signal(signum))
    return child.wait()


def renice(value: int) -> None:
    """Nice ``value`` for this process and what it starts, and for its autogroup: with
    ``sched_autogroup_enabled`` (Debian's default) the scheduler first shares the CPUs
    between sessions and applies a process's nice only inside its own, so on a machine
    shared with other sessions only the autogroup's nice gives the bench a larger share."""
    os.setpriority(os.PRIO_PROCESS, 0, value)
    try:
        Path("/proc/self/autogroup").write_text(str(value))
    except OSError as exc:
        log(f"autogroup nice not set ({exc}); process nice {value} only")


def set_up_namespace() -> None:
    for cmd in (
        "ip link set lo up",
        f"ip link add {VETH} type veth peer name jv1",
        f"ip addr add {VETH_ADDRESS}/32 dev {VETH}",
        "ip link set jv1 up",
        f"ip link set {VETH} up",
    ):
        subprocess.run(cmd.split(), check=True)
    for _ in range(50):
        out = subprocess.run(["ip", "-br", "link", "show", VETH], capture_output=True, text=True)
        if "LOWER_UP" in out.stdout:
            break
        time.sleep(0.1)


def die_with_parent() -> None:
    """A child gets SIGKILL when this process dies (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def stop_started() -> None:
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ /proc readings


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of all threads of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def udp_snmp() -> dict[str, int]:
    lines = [
        x.split() for x in Path("/proc/net/snmp").read_text().splitlines() if x.startswith("Udp:")
    ]
    return dict(zip(lines[0][1:], (int(x) for x in lines[1][1:]), strict=True))


class DropWatch:
    """Datagrams the kernel dropped on each process's UDP sockets (receive buffer full).
    /proc/net/udp counts per socket and forgets a socket when it closes, so it is read
    every half second during the window and each socket's own increase is kept."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.first: dict[str, int] = {}
        self.last: dict[str, tuple[str, int]] = {}  # inode -> (owner, drops)
        self.sample(start=True)

    def sample(self, start: bool = False) -> None:
        drops = {}
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            parts = line.split()
            drops[parts[9]] = int(parts[12])
        for name, pid in self.pids.items():
            with contextlib.suppress(FileNotFoundError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                        inode = target[8:-1]
                        if target.startswith("socket:[") and inode in drops:
                            if inode not in self.last:
                                self.first[inode] = drops[inode] if start else 0
                            self.last[inode] = (name, drops[inode])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.sample()

    def totals(self) -> dict[str, int]:
        self.sample()
        out = dict.fromkeys(self.pids, 0)
        for inode, (name, drops) in self.last.items():
            out[name] += drops - self.first[inode]
        return out


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (busy: neither idle nor iowait)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(parts) - parts[3] - parts[4], sum(parts)


# ------------------------------------------------------------------ load side


class YunkanServer(ChildServer):
    """``bench/relay.py``'s server in ``node`` mode, gathering on the veth address."""

    def __init__(self) -> None:
        argv = [sys.executable, __file__, "--serve-node"]
        super().__init__(argv, preexec=die_with_parent, raise_errors=True)
        STARTED.append(self.proc)


class PublisherRtcp:
    """Counts the RTCP each publisher's senders get from the server (REMB, RR, PLI, …)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.remb: list[int] = []

    def reset(self) -> None:
        self.counts.clear()
        self.remb.clear()

    def watch(self, client: MediaClient) -> None:
        assert client.publish_pc is not None
        for sender in client.publish_pc.getSenders():
            original = sender._handle_rtcp_packet

            async def counted(packet: Any, original: Any = original) -> None:
                fmt = getattr(packet, "fmt", None)
                key = type(packet).__name__.replace("Rtcp", "").replace("Packet", "")
                key += f"/{fmt}" if fmt is not None else ""
                self.counts[key] = self.counts.get(key, 0) + 1
                if key == "Psfb/15" and packet.fci[:4] == b"REMB":
                    self.remb.append(unpack_remb_fci(packet.fci)[0])
                await original(packet)

            sender._handle_rtcp_packet = counted  # type: ignore[method-assign]


def new_publisher_tracks(media: Any) -> tuple[LoopTrack, LoopTrack]:
    vp8, opus = media
    return LoopTrack("audio", [(p, True) for p in opus], 48000, 960), LoopTrack(
        "video", vp8, 90000, 3000
    )


async def janus_pair(janus: Janus, k: int, media: Any, clients: dict[str, MediaClient]) -> None:
    """Publisher k and its subscriber through Janus room 1000 + k (as ``bench.join`` does
    for Yunkan)."""
    room, pub, sub = 1000 + k, f"pub{k}", f"sub{k}"
    pub_handle = await janus.attach()
    await janus.message(
        pub_handle,
        {
            "request": "create",
            "room": room,
            "publishers": 1,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "permanent": False,
        },
    )
    publisher = clients[pub] = MediaClient(host_addresses=LOOPBACK, decode=False)
    audio, video = new_publisher_tracks(media)
    offer = await publisher.publish_offer([audio, video])
    assert publisher.publish_pc is not None
    for transceiver in publisher.publish_pc.getTransceivers():
        if transceiver.sender.track is video:
            route_keyframe_requests(transceiver.sender, video.restart)
    event = await janus.message(
        pub_handle,
        {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": room,
            "display": pub,
            "audio": True,
            "video": True,
        },
        jsep={"type": "offer", "sdp": offer, "trickle": False},
    )
    await publisher.accept_publish_answer(event["jsep"]["sdp"])
    # Janus refuses a subscriber ("No such feed") until the publisher's connection is up.
    await janus.wait_event("webrtcup", pub_handle, 30)
    sub_handle = await janus.attach()
    feed = event["plugindata"]["data"]["id"]
    event = await janus.message(
        sub_handle,
        {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]},
    )
    subscriber = clients[sub] = MediaClient(host_addresses=LOOPBACK, decode=False)
    answer = await subscriber.accept_subscription(pub, event["jsep"]["sdp"])
    bench.count_lightly(subscriber, pub)
    await janus.message(
        sub_handle, {"request": "start"}, jsep={"type": "answer", "sdp": answer, "trickle": False}
    )


class Round:
    """One server process, its n pairs and their figures."""

    def __init__(self, kind: str, n: int, phase: str, index: int, media: Any) -> None:
        self.kind, self.n, self.phase, self.media = kind, n, phase, media
        self.clients: dict[str, MediaClient] = {}
        self.rtcp = PublisherRtcp()
        self.result: dict[str, Any] = {"server": kind, "n": n, "phase": phase, "round": index}
        self.lost: set[int] = set()  # ids of connections seen failed/closed before teardown
        self.first_frame: dict[int, float | None] = {}
        self.tearing_down = False
        self.waiters: list[asyncio.Task[None]] = []

    def watch_states(self, pcs: list[RTCPeerConnection]) -> None:
        for pc in pcs:

            def changed(pc: RTCPeerConnection = pc) -> None:
                if pc.connectionState in ("failed", "closed") and not self.tearing_down:
                    self.lost.add(id(pc))

            pc.on("connectionstatechange", changed)

    def pcs(self, *names: str) -> list[RTCPeerConnection]:
        out: list[RTCPeerConnection] = []
        for name in names:
            c = self.clients.get(name)
            if c is not None:
                out += [*c.subscriptions.values()] + ([c.publish_pc] if c.publish_pc else [])
        return out

    async def _first_frame(self, k: int, started: float) -> None:
        self.first_frame[k] = None
        while time.monotonic() < started + JOIN_WAIT:
            media = self.clients[f"sub{k}"].received.get(f"pub{k}")
            if media is not None and media.video_frames >= 1:
                self.first_frame[k] = round(time.monotonic() - started, 2)
                return
            await asyncio.sleep(0.05)

    async def join(self, server: Any, janus: Janus | None) -> None:
        refused, errors = 0, []
        for k in range(self.n):
            started = time.monotonic()
            try:
                if janus is not None:
                    await janus_pair(janus, k, self.media, self.clients)
                else:
                    await bench.join(
                        server, f"pair{k}", [f"pub{k}"], self.media, self.clients, (f"sub{k}",)
                    )
            except ServerError as exc:
                for name in (f"pub{k}", f"sub{k}"):
                    client = self.clients.pop(name, None)
                    if client is not None:
                        await client.close()
                if exc.code == "node_busy":
                    refused += 1
                else:
                    errors.append(str(exc)[:200])
                continue
            except Exception as exc:
                errors.append(repr(exc)[:200])
                self.first_frame[k] = None  # a join that failed is a join that never showed video
                self.watch_states(self.pcs(f"pub{k}", f"sub{k}"))
                continue
            self.watch_states(self.pcs(f"pub{k}", f"sub{k}"))
            self.rtcp.watch(self.clients[f"pub{k}"])
            self.waiters.append(asyncio.ensure_future(self._first_frame(k, started)))
        self.result["refused"] = refused
        if errors:
            self.result["join_errors"] = errors

    def frames(self) -> dict[tuple[str, str], tuple[int, int]]:
        return bench.snapshot(self.clients)

    async def measure(self, server_pid: int, window: float) -> None:
        r = self.result
        self.rtcp.reset()
        drops = DropWatch({"server": server_pid, "loadgen": os.getpid()})
        watching = asyncio.ensure_future(drops.run())
        before, cpu0, own0 = self.frames(), proc_cpu(server_pid), time.process_time()
        snmp0, busy0, load0, t0 = udp_snmp(), machine_busy(), load_average(), time.monotonic()
        await asyncio.sleep(window)
        after, cpu1, own1 = self.frames(), proc_cpu(server_pid), time.process_time()
        snmp1, busy1, span = udp_snmp(), machine_busy(), time.monotonic() - t0
        watching.cancel()
        fps = sorted((after[k][0] - before.get(k, (0, 0))[0]) / span for k in after)
        aps = sorted((after[k][1] - before.get(k, (0, 0))[1]) / span for k in after)
        user, system = ((cpu1[i] - cpu0[i]) / span for i in (0, 1))
        server_cpu, loadgen_cpu = user + system, (own1 - own0) / span
        machine = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * (os.cpu_count() or 1)
        remb = sorted(self.rtcp.remb)
        publishers = max(1, len(fps))
        r.update(
            streams=len(fps),
            window_s=round(span, 2),
            server_cpu=round(server_cpu, 4),
            server_user_sys=[round(user, 4), round(system, 4)],
            cpu_per_stream=round(server_cpu / publishers, 5),
            fps_min=round(fps[0], 2) if fps else 0.0,
            fps_median=round(statistics.median(fps), 2) if fps else 0.0,
            audio_pps_median=round(statistics.median(aps), 2) if aps else 0.0,
            udp_rcvbuf_errors=snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"],
            udp_drops_by_process=drops.totals(),
            udp_snmp_delta={
                k: snmp1[k] - snmp0[k]
                for k in ("InDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors")
            },
            rtcp_to_publishers_per_s={
                k: round(v / span, 1) for k, v in sorted(self.rtcp.counts.items())
            },
            remb_per_s=round(len(remb) / span / publishers, 2),
            remb_min_bps=remb[0] if remb else None,
            remb_median_bps=statistics.median(remb) if remb else None,
            loadgen_cpu=round(loadgen_cpu, 4),
            machine_busy_cores=round(machine, 3),
            others_cores=round(machine - server_cpu - loadgen_cpu, 3),
            load_average=[load0, load_average()],
        )

    def finish(self) -> None:
        r = self.result
        states: dict[str, int] = {}
        for pc in self.pcs(*self.clients):
            states[pc.connectionState] = states.get(pc.connectionState, 0) + 1
            if pc.connectionState in ("failed", "closed"):  # also those lost before watched
                self.lost.add(id(pc))
        r["connection_states"] = states
        r["connections_lost"] = len(self.lost)
        r["join_to_first_frame_s"] = [self.first_frame.get(k) for k in sorted(self.first_frame)]
        r["slow_joins"] = sum(1 for t in self.first_frame.values() if t is None or t > SLOW_JOIN)


async def run_round(
    kind: str, n: int, phase: str, index: int, media: Any, args: argparse.Namespace
) -> dict[str, Any]:
    rnd = Round(kind, n, phase, index, media)
    r = rnd.result
    janus: Janus | None = None
    if kind == "janus":
        server: Any = JanusServer(
            args.janus_config, args.logdir / f"round{index}-janus.log", die_with_parent
        )
        STARTED.append(server.proc)
    else:
        server = YunkanServer()
        await server.connect()
    pid = server.proc.pid
    try:
        await asyncio.sleep(1.0)
        idle0 = sum(proc_cpu(pid))
        await asyncio.sleep(2.0)
        r["server_idle_cpu"] = round((sum(proc_cpu(pid)) - idle0) / 2.0, 4)
        t_joins = time.monotonic()
        if kind == "janus":
            janus = Janus(f"http://127.0.0.1:{server.port}/janus")
            await janus.start()
        await rnd.join(server, janus)
        r["joins_s"] = round(time.monotonic() - t_joins, 1)
        if rnd.waiters:
            await asyncio.wait(rnd.waiters, timeout=15 if phase == "quiet" else JOIN_WAIT)
        r["subscribers_without_video"] = sum(1 for t in rnd.first_frame.values() if t is None)
        await asyncio.sleep(args.warmup)
        profiling = None
        if args.profile and kind == "yunkan":  # py-spy samples the measuring window
            profiling = asyncio.ensure_future(profile(pid, args, rnd))
        await rnd.measure(pid, args.window)
        if janus is not None:
            r["janus_events"] = {k: len(v) for k, v in janus.events.items()}
        if profiling is not None:
            r["profile"] = await profiling
        rnd.finish()
    finally:
        rnd.tearing_down = True
        for waiter in rnd.waiters:
            waiter.cancel()
        await bench.close_all(rnd.clients)
        if janus is not None:
            await janus.close()
        await server.stop()
    problems = []
    if r["subscribers_without_video"]:
        problems.append("subscriber without video")
    if r["fps_median"] < 27 or r["fps_min"] < 20:
        problems.append("fps below 27 (median) or 20 (min)")
    if r["loadgen_cpu"] > 0.85:
        problems.append("load generator saturated")
    r["valid"] = not problems
    if problems:
        r["problems"] = problems
    return r


async def profile(pid: int, args: argparse.Namespace, rnd: Round) -> dict[str, Any]:
    """py-spy on the relay for ``args.profile`` s from the start of the window (raw stacks)."""
    raw = args.logdir / "relay-profile.txt"
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), *f"record --pid {pid} --format raw --nonblocking --rate 100".split()]
    argv += ["--duration", str(int(args.profile)), "--output", str(raw)]
    log(f"  py-spy on the relay (pid {pid}) for {args.profile:.0f} s ...")
    t0, cpu0, before = time.monotonic(), sum(proc_cpu(pid)), rnd.frames()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL)
    await proc.wait()
    span, after = time.monotonic() - t0, rnd.frames()
    cpu = (sum(proc_cpu(pid)) - cpu0) / span
    fps = statistics.median((after[k][0] - before.get(k, (0, 0))[0]) / span for k in after)
    header = (
        f"py-spy record --format raw --nonblocking --rate 100 of the relay at {args.n[0]} pairs"
        f" for {span:.0f} s (bench/sfu.py --profile): server CPU {cpu:.1%} of a core while"
        f" sampled, subscribers' median {fps:.1f} fps, load average {load_average()}"
    )
    summary = write_profile(raw, header, args.profile_out)
    return {
        "raw": str(raw),
        "server_cpu": round(cpu, 4),
        "fps_median": round(fps, 2),
        "groups": summary["groups"],
    }


def write_profile(raw: Path, header: str, out: str) -> dict[str, Any]:
    """Print the breakdown of the raw profile ``raw`` (and write it to ``out``)."""
    summary = summarise(raw.read_text().splitlines())
    text = f"{header}\n\n{report(summary)}\n"
    print(f"\n{text}")
    if out:
        Path(out).write_text(text)
    return summary


# ------------------------------------------------------------------ main


def load_media(path: Path) -> Any:
    """``bench.encode_media()`` once, cached in ``path``: its noise is random, each encoding
    is a different 1.0–1.4 Mbit/s, so runs compare best on the same bytes."""
    if path.exists():
        data = json.loads(path.read_text())
        return [(bytes.fromhex(h), k) for h, k in data["vp8"]], [
            bytes.fromhex(h) for h in data["opus"]
        ]
    vp8, opus = bench.encode_media()
    path.write_text(
        json.dumps({"vp8": [(d.hex(), k) for d, k in vp8], "opus": [d.hex() for d in opus]})
    )
    return vp8, opus


def start_hogs() -> list[subprocess.Popen[bytes]]:
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while 1: pass"], preexec_fn=die_with_parent)
        for _ in range(os.cpu_count() or 1)
    ]
    STARTED.extend(hogs)
    return hogs


async def run_rounds(
    plan: list[tuple[str, int, str]],
    media: Any,
    args: argparse.Namespace,
    rounds: list[dict[str, Any]],
) -> None:
    for kind, n, phase in plan:
        for attempt in range(1 + (args.retries if phase == "quiet" else 0)):
            index = len(rounds) + 1
            try:
                r = await run_round(kind, n, phase, index, media, args)
            except Exception as exc:
                r = {
                    "server": kind,
                    "n": n,
                    "phase": phase,
                    "round": index,
                    "error": repr(exc)[:300],
                    "valid": False,
                }
            r["attempt"] = attempt + 1
            rounds.append(r)
            log(f"  {json.dumps({k: v for k, v in r.items() if k != 'profile'})}")
            await asyncio.sleep(args.pause)
            if r["valid"]:
                break


async def main(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    media = load_media(Path(args.media))
    load_before = load_average()
    log(
        f"media: {len(media[0])} VP8 frames, {len(media[1])} Opus packets; "
        f"load average {load_before}"
    )
    order = [{"J": "janus", "Y": "yunkan"}[c] for c in args.order.upper()]
    rounds: list[dict[str, Any]] = []
    if args.profile:
        await run_rounds([("yunkan", args.n[0], "quiet")], media, args, rounds)
    elif args.contention:
        n = args.n[0]
        await run_rounds([(k, n, "quiet") for k in ("janus", "yunkan")], media, args, rounds)
        log(f"  starting {os.cpu_count()} CPU hogs for the rest of the run")
        start_hogs()
        await asyncio.sleep(3)
        await run_rounds([(k, n, "contention") for k in order], media, args, rounds)
    else:
        await run_rounds([(k, n, "quiet") for n in args.n for k in order], media, args, rounds)
    stop_started()
    quiet, contention = quiet_summary(rounds), contention_summary(rounds)
    print()
    print(table(quiet, contention))
    loads = [x for r in rounds for x in r.get("load_average", [])]
    out = {
        "bench": "sfu",
        "quiet": quiet,
        "contention": contention,
        "load_average": [min([load_before, *loads]), max([load_before, *loads])],
        "window_s": args.window,
        "warmup_s": args.warmup,
        "order": args.order,
        "renice": args.renice,
        "cpu_count": os.cpu_count(),
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    args.rounds = rounds
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--n", type=int, nargs="+", default=None, help="pairs (4 12 24; contention 12)"
    )
    parser.add_argument("--order", default=None, help="rounds per N: J = Janus, Y = Yunkan")
    parser.add_argument("--contention", action="store_true", help="a CPU hog on every core")
    parser.add_argument(
        "--quick", action="store_true", help="one round each at 4 pairs, short windows"
    )
    parser.add_argument("--warmup", type=float, default=None, help="seconds (5)")
    parser.add_argument("--window", type=float, default=None, help="seconds (20)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument("--retries", type=int, default=1, help="re-runs of an invalid quiet round")
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="S",
        help="py-spy the relay for S s of its window (one Yunkan round)",
    )
    parser.add_argument("--profile-out", default="", help="write the profile summary here too")
    parser.add_argument(
        "--renice",
        type=int,
        default=0,
        help="nice value for the bench and everything it starts (e.g. -10 on a busy machine)",
    )
    parser.add_argument("--media", default="/tmp/yunkan-sfu-media.json", help="encoded media cache")
    parser.add_argument("--logdir", default="", help="Janus logs and raw profiles (a temp dir)")
    parser.add_argument("--json-out", default="", help="every round, as JSON")
    parser.add_argument("--serve-node", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        defaults = {"n": [4], "order": "JY", "warmup": 2.0, "window": 6.0}
    else:
        defaults = {
            "n": [12] if args.contention else [24] if args.profile else [4, 12, 24],
            "order": "JYJY" if args.contention else "JYJYJY",
            "warmup": 5.0,
            "window": 20.0,
        }
    if args.profile:
        defaults["window"] = args.profile
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_node:
        asyncio.run(bench.serve("node"))
        sys.exit(0)
    if os.environ.get(NETNS_ENV) != "1":
        sys.exit(enter_namespace())
    set_up_namespace()
    if arguments.renice:
        renice(arguments.renice)  # inherited by every child
    workdir = Path(tempfile.mkdtemp(prefix="yunkan-sfu-"))
    arguments.logdir = Path(arguments.logdir) if arguments.logdir else workdir
    arguments.logdir.mkdir(parents=True, exist_ok=True)
    arguments.janus_config = write_config(workdir / "janus", VETH)
    log(
        f"namespace {VETH} {VETH_ADDRESS}; logs in {arguments.logdir}; "
        f"load average {load_average()}"
    )

    async def run() -> dict[str, Any]:
        task = asyncio.ensure_future(main(arguments))
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await task

    try:
        result = asyncio.run(run())
    finally:
        stop_started()
        shutil.rmtree(workdir / "janus", ignore_errors=True)
    if arguments.json_out:
        every = {**result, "rounds": arguments.rounds}
        Path(arguments.json_out).write_text(json.dumps(every) + "\n")
    print(json.dumps(result))
