"""What every benchmark shares: processes under test, /proc readers, and RESULTS.md.

Processes are started by PID and stopped by PID (SIGTERM, then SIGKILL after a grace
period); nothing here ever signals a process it did not start. All traffic is loopback.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "BENCH_DIR",
    "ROOT",
    "CpuSample",
    "LoadGen",
    "NodeUnderTest",
    "ProcessUnderTest",
    "Room",
    "SpeakerProcess",
    "StockServer",
    "append_results",
    "cpu_sample",
    "fit_line",
    "free_port",
    "markdown_table",
    "media_code_hash",
    "rss_kib",
    "run_dir",
]

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS = BENCH_DIR / "RESULTS.md"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def media_code_hash() -> str:
    """A short hash of the node's media path as it is on disk right now.

    Others change the tree while benchmarks run; each point records what it measured.
    """
    digest = hashlib.sha256()
    media = [*(ROOT / "node" / "media").glob("*.py"), *(ROOT / "node" / "onair").glob("*.py")]
    for path in sorted(media):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_dir(prefix: str) -> Path:
    """A fresh temporary directory for one benchmark's configs and logs (kept afterwards)."""
    return Path(tempfile.mkdtemp(prefix=f"parley-bench-{prefix}-"))


# -- /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds used by a process, machine-wide busy/total jiffies, and when."""

    at: float
    process_s: float
    machine_busy: int
    machine_total: int

    def process_percent(self, later: CpuSample) -> float:
        """% of one core the process used between this sample and ``later``."""
        return 100.0 * (later.process_s - self.process_s) / (later.at - self.at)

    def machine_percent(self, later: CpuSample) -> float:
        """% of the whole machine (all cores) that was busy in between."""
        total = later.machine_total - self.machine_total
        return 100.0 * (later.machine_busy - self.machine_busy) / total if total else 0.0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces; fields after the closing paren are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def cpu_sample(pid: int) -> CpuSample:
    busy, total = _machine_jiffies()
    return CpuSample(time.monotonic(), process_cpu_seconds(pid), busy, total)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_pids(parent: int, marker: str) -> list[int]:
    """PIDs of ``parent``'s children whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and marker in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y over x."""
    n = len(points)
    if n < 2:
        return 0.0, points[0][1] if points else 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx if sxx else 0.0
    return slope, mean_y - slope * mean_x


# -- processes -----------------------------------------------------------------------------


@dataclass
class ProcessUnderTest:
    """A child process with its output in a log file; stopped by its own PID only."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))


@dataclass
class Room:
    id: str
    host_token: str
    whip_url: str
    whep_url: str
    listen_url: str
    ws_url: str


class NodeUnderTest(ProcessUnderTest):
    """A Parley node as an operator runs it: `python -m node --config node.toml`."""

    def __init__(self, directory: Path, settings: dict[str, dict[str, Any]] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.code = ""
        self.settings = settings or {}
        """Extra node.toml keys per section (a variant under test), over the bench's own."""
        super().__init__(
            [sys.executable, "-m", "node", "--config", str(directory / "node.toml")],
            directory / "node.log",
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        sections: dict[str, dict[str, Any]] = {
            "node": {
                "base_url": self.base_url,
                "port": self.port,
                "data_dir": str(self.directory / "data"),
            },
            "accounts": {"registration": "open", "auth_rate_per_minute": 100000},
            "media": {"host_addresses": ["127.0.0.1"]},
        }
        for name, values in self.settings.items():
            sections.setdefault(name, {}).update(values)
        write_toml(self.directory / "node.toml", sections)
        self.code = media_code_hash()
        self.spawn()
        _wait_http(f"{self.base_url}/api/v1/config", self, timeout)

    def live_room(self) -> Room:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            response = http.post(
                "/api/v1/accounts",
                json={"username": f"bench{os.getpid()}", "password": "benchmark password"},
            )
            response.raise_for_status()
            token = str(response.json()["token"])
            auth = {"Authorization": f"Bearer {token}"}
            http.cookies.clear()
            room = http.post("/api/v1/rooms", json={"title": "Benchmark"}, headers=auth)
            room.raise_for_status()
            started = http.post(f"/api/v1/rooms/{room.json()['id']}/start", headers=auth)
            started.raise_for_status()
            data = started.json()
            # Everyone comes on stage muted, the host included.
            unmuted = http.post(
                f"/api/v1/rooms/{data['id']}/mute", json={"muted": False}, headers=auth
            )
            unmuted.raise_for_status()
        return Room(
            data["id"],
            token,
            data["whip_url"],
            data["whep_url"],
            data["listen_url"],
            data["ws_url"],
        )

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/api/v1/node/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def log_problems(self) -> list[str]:
        """Lines of the node's log that look like trouble (tracebacks, errors, warnings)."""
        if not self.log_path.exists():
            return []
        keys = ("Traceback", "ERROR", "Error", "WARNING", "Exception")
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if any(key in line for key in keys)]


class StockServer(ProcessUnderTest):
    """bench/stock_server.py: stock aiortc WHEP serving (pre-encoded or encode per listener)."""

    def __init__(self, directory: Path, mode: str) -> None:
        self.port = free_port()
        self.mode = mode
        super().__init__(
            [sys.executable, "-m", "bench.stock_server", "--port", str(self.port), "--mode", mode],
            directory / f"stock-{mode}.log",
        )

    @property
    def whep_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/whep"

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        _wait_http(f"http://127.0.0.1:{self.port}/stats", self, timeout)

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())


class SpeakerProcess(ProcessUnderTest):
    """tests/speaker_client.py publishing a tone over WHIP."""

    def __init__(self, directory: Path, room: Room, hz: float = 440.0) -> None:
        super().__init__(
            [
                sys.executable,
                str(ROOT / "tests" / "speaker_client.py"),
                room.whip_url,
                room.host_token,
                str(hz),
            ],
            directory / "speaker.log",
        )

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "publishing" in self.log_tail():
                return
            if not self.alive():
                raise RuntimeError(f"speaker exited:\n{self.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"speaker did not publish in {timeout} s:\n{self.log_tail()}")


def _wait_http(url: str, process: ProcessUnderTest, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.argv} exited at start-up:\n{process.log_tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{process.argv} did not answer in {timeout} s:\n{process.log_tail()}")


class LoadGen:
    """One bench/loadgen.py process, driven line by line over its stdin/stdout (JSON)."""

    def __init__(
        self,
        directory: Path,
        *,
        kind: str,
        count: int,
        url: str,
        name: str,
        max_seconds: float,
        canary: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--kind",
            kind,
            "--count",
            str(count),
            "--url",
            url,
            "--max-seconds",
            str(max_seconds),
        ]
        if not canary:
            self.argv.append("--no-canary")
        self.argv.extend(extra)
        self.stderr_path = directory / f"loadgen-{name}.log"
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the child from here on
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            stderr.close()
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next JSON line whose "event" is ``event`` (others are skipped)."""
        assert self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if message.get("event") == event:
                        return dict(message)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"loadgen: no {event!r} in {timeout} s")
                if selector.select(remaining):
                    chunk = os.read(stdout.fileno(), 65536)
                    if not chunk:
                        raise RuntimeError(f"loadgen exited before {event!r}: {self.stderr()}")
                    self._buffer += chunk

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def stop(self, grace: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            self.send("quit")
        except (BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# -- RESULTS.md ----------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + (" (working tree has uncommitted changes)" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_line() -> str:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return (
        f"nproc {os.cpu_count()}, {_cpu_model()}, {mem_kib / 2**20:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def command_line() -> str:
    module = sys.modules["__main__"].__spec__
    prog = f"-m {module.name}" if module is not None else sys.argv[0]
    return f".venv/bin/python {prog} " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def append_results(title: str, body: str, *, command: str | None = None) -> None:
    """Append one run's section to bench/RESULTS.md (created with its header if missing)."""
    if not RESULTS.exists():
        RESULTS.write_text(_RESULTS_HEADER)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## {title} — {stamp}\n\n"
        f"- commit: `{_git_commit()}`\n"
        f"- machine: {machine_line()}\n"
        f"- command: `{command or command_line()}`\n\n"
        f"{body.strip()}\n"
    )
    with RESULTS.open("a") as handle:
        handle.write(section)


_RESULTS_HEADER = """\
# Parley benchmark results

Every run of `bench/` appends a section here (newest last); nothing is ever rewritten.

## Method

- **Fan-out** (`bench/bench_fanout.py`): for each listener count a *fresh* node process
  (`python -m node --config <tmp>/node.toml`, ICE on 127.0.0.1 only) gets a host account, a
  live room, and a speaker process (`tests/speaker_client.py`) publishing a 440 Hz tone over
  WHIP. A separate load-generator process (`bench/loadgen.py`) opens N listeners: WebRTC
  (WHEP, aiortc: full ICE + DTLS + SRTP, each RTP packet is decrypted and parsed but its Opus
  payload is not decoded: the receiver's `_handle_rtp_packet` is replaced by a counter that
  checks the payload type and the Opus TOC byte) or Ogg/HTTP (raw asyncio sockets, streaming
  `GET listen_url`, bytes and `OggS` pages counted). One *canary* listener per load-generator
  process does decode (Opus or Ogg) and must find 440 Hz dominant. After a settle period the
  node's CPU (utime+stime of `/proc/PID/stat`, all threads) is measured over a steady window,
  with its RSS (`VmRSS`) at the end. Per-listener cost is the least-squares slope over
  N = 0 and the listed counts; "listeners per core" is 100 % / slope.
- The **stock baseline** (`bench/stock_server.py`) is measured in the same run by the same
  load generator, interleaved with the node point by point: plain aiortc, one Opus encoder
  every 20 ms, per listener a `MediaStreamTrack` whose `recv()` returns the shared
  `av.Packet` from its own `asyncio.Queue` (aiortc's documented pre-encoded path); and, at a
  small N only, per-listener tracks returning `AudioFrame`s so aiortc encodes per listener.
- **Loss / jitter**: per listener, packets received in the window against the RTP sequence
  span (loss) and against 50 packets/s × window (rate); RFC 3550 inter-arrival jitter.
- **Mixer** (`bench/bench_mixer.py`): `RoomMixer.tick()` timed in-process with every speaker
  pushing tone frames; % of a core at 50 ticks/s.
- **Join** (`bench/bench_join.py`): sequential joins against an idle node with a speaker:
  WHEP POST start → first RTP packet, and → first decoded frame above -40 dBFS; Ogg GET →
  first page bytes.
- The machine has 2 shared, noisy cores: the node, the speaker and the load generator all
  compete for them. Each section reports the load generator's CPU and the whole machine's
  busy % so contention is visible; figures at the highest counts are the least clean.
"""


@dataclass(kw_only=True)
class LoadWindow:
    """What one point of a fan-out benchmark saw: connections, then a steady window of
    the server's CPU and RSS while the load generators count what arrives."""

    connected: int = 0
    failures: int = 0
    connect_s: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)
    rss_kib: int = 0
    cpu_percent: float = 0.0
    machine_percent: float = 0.0
    loadgen_cpu_percent: float = 0.0
    profile: str | None = None
    problems: list[str] = field(default_factory=list)
    other_cpu_percent: dict[str, float] = field(default_factory=dict)
    """CPU of further server processes measured over the same window (by label)."""
    other_rss_kib: dict[str, int] = field(default_factory=dict)

    def merged(self, key: str, how: str = "mean") -> float | None:
        """One figure over all load-generator processes, weighted by their listeners."""
        values = [(r[key], r["listeners"]) for r in self.results if r.get(key) is not None]
        if not values:
            return None
        if how == "max":
            return float(max(v for v, _ in values))
        if how == "sum":
            return float(sum(v for v, _ in values))
        weight = sum(w for _, w in values)
        return sum(v * w for v, w in values) / weight

    def _canary_hz(self) -> float | None:
        """The dominant frequency the decoding (canary) listener heard, if any."""
        return next((r["canary_hz"] for r in self.results if r.get("canary_hz")), None)

    def webrtc_delivery(self) -> str:
        """What WebRTC listeners received over the window, in one cell."""
        rate = self.merged("rate_percent")
        if rate is None:
            return "-"
        loss = self.merged("loss_percent_seq") or 0.0
        jitter = self.merged("jitter_ms_mean") or 0.0
        jitter_max = self.merged("jitter_ms_max", "max") or 0.0
        canary = self._canary_hz()
        silent = sum(int(r.get("silent_listeners", 0)) for r in self.results)
        return (
            f"rate {rate:.1f} %, loss {loss:.3f} %, jitter {jitter:.2f}/{jitter_max:.1f} ms, "
            f"canary {canary or 0:.0f} Hz, silent {silent}"
        )

    def http_delivery(self, page_ms: int) -> str:
        """What HTTP (Ogg) listeners received over the window, in one cell."""
        pages = self.merged("pages_per_s_mean")
        if pages is None:
            return "-"
        slowest = min(
            (r["pages_per_s_min"] for r in self.results if "pages_per_s_min" in r), default=0
        )
        expected = 1000 / page_ms
        canary = self._canary_hz()
        ended = sum(int(r.get("ended_early", 0)) for r in self.results)
        return (
            f"rate {100 * pages / expected:.1f} % (slowest {100 * slowest / expected:.0f} %), "
            f"canary {canary or 0:.0f} Hz, ended early {ended}"
        )


def start_loadgens(
    directory: Path,
    *,
    kind: str,
    listeners: int,
    url: str,
    per_proc: int,
    max_seconds: float,
    extra: Sequence[str] = (),
) -> list[LoadGen]:
    """Spread `listeners` over as many load-generator processes as `per_proc` asks."""
    procs = math.ceil(listeners / per_proc) if listeners else 0
    return [
        LoadGen(
            directory,
            kind=kind,
            count=listeners // procs + (1 if i < listeners % procs else 0),
            url=url,
            name=str(i),
            max_seconds=max_seconds,
            canary=i == 0,
            extra=extra,
        )
        for i in range(procs)
    ]


def load_and_measure(
    window: LoadWindow,
    pid: int,
    generators: list[LoadGen],
    directory: Path,
    *,
    kind: str,
    listeners: int,
    url: str,
    per_proc: int,
    settle: float,
    duration: float,
    profile_seconds: int = 0,
    extra: Sequence[str] = (),
    **measure: Any,
) -> None:
    """Start load generators for `listeners` (appended to `generators`, which the caller
    stops whatever happens) and measure `pid` with them (see :func:`measure_window`);
    `extra` goes on their command line."""
    budget = settle + duration + profile_seconds + 120 + listeners * 0.5
    generators.extend(
        start_loadgens(
            directory,
            kind=kind,
            listeners=listeners,
            url=url,
            per_proc=per_proc,
            max_seconds=budget,
            extra=extra,
        )
    )
    measure_window(
        window,
        pid,
        generators,
        budget=budget,
        settle=settle,
        duration=duration,
        profile_seconds=profile_seconds,
        **measure,
    )


def measure_window(
    window: LoadWindow,
    pid: int,
    generators: list[LoadGen],
    *,
    budget: float,
    settle: float,
    duration: float,
    profile_seconds: int = 0,
    profile_path: Path | None = None,
    others: dict[str, int] | None = None,
    at_end: Callable[[], None] | None = None,
) -> None:
    """Wait for every listener, settle, measure `pid` (and the processes in `others`,
    label to PID) over `duration`, collect the load generators' counts (and a profile if
    asked), call `at_end` while every listener is still there, then let them hang up."""
    from bench import profile

    for generator in generators:
        connected = generator.expect("connected", timeout=budget)
        window.connected += int(connected["ok"])
        window.failures += int(connected["failed"])
        window.connect_s = max(window.connect_s, float(connected["connect_s"]))
        if connected["failed"]:
            window.problems.extend(f"loadgen: {f}" for f in connected["failures"])
    time.sleep(settle)
    for generator in generators:
        generator.send("start")
    others = others or {}
    before = cpu_sample(pid)
    others_before = {label: cpu_sample(other) for label, other in others.items()}
    time.sleep(duration)
    after = cpu_sample(pid)
    for label, other in others.items():
        window.other_cpu_percent[label] = others_before[label].process_percent(cpu_sample(other))
        window.other_rss_kib[label] = rss_kib(other)
    window.rss_kib = rss_kib(pid)
    for generator in generators:
        generator.send("stop")
    for generator in generators:
        window.results.append(generator.expect("result", timeout=60))
    window.cpu_percent = before.process_percent(after)
    window.machine_percent = before.machine_percent(after)
    window.loadgen_cpu_percent = sum(r["loadgen_cpu_percent"] for r in window.results)
    if profile_seconds and profile_path is not None:
        window.profile = profile.record(pid, profile_seconds, profile_path) or str(profile_path)
    if at_end is not None:
        at_end()
    for generator in generators:
        generator.send("quit")
    for generator in generators:
        try:
            generator.expect("closed", timeout=60)
        except (TimeoutError, RuntimeError) as exc:
            window.problems.append(f"loadgen close: {exc}")
