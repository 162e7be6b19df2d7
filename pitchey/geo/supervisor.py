"""Start the geo topology as separate OS processes: one regional worker per region, HAProxy
as the edge in front of them and the edge's status agent; restart what dies, stop everything
on request.

The supervisor binds every listening socket itself and hands each child its socket (HAProxy
gets its own as `bind fd@N`), so all ports are known before any child starts (port 0 works)
and a restarted child gets its old port back. The primary region's worker starts first, so
one process applies the migrations. HAProxy's configuration is generated from the regions
file (`haproxy_config`) and checked with `haproxy -c` before anything is started: a
configuration HAProxy rejects is reported with HAProxy's own message. A child that dies is
restarted after `supervisor.restart_delay_s`; SIGUSR1 restarts dead children at once (what
`pitchey failover` uses). Children get SIGTERM if the supervisor dies.

`python -m pitchey.geo.supervisor [--port N] [--regions FILE]` runs it, as does
`pitchey serve --topology geo`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pitchey.geo.generations import SharedGenerations
from pitchey.geo.haproxy_config import EdgeLayout, render_haproxy_config
from pitchey.geo.regions import GeoConfig
from pitchey.geo.serving import listening_socket
from pitchey.settings import Settings
from pitchey_cli.exitcodes import ExitCode
from pitchey_cli.usage import CommandParser

__all__ = ["Supervisor", "ChildProcess", "serve_geo", "settings_env", "main", "StartError",
           "ConfigRejected", "HaproxyMissing", "haproxy_binary", "check_haproxy_config",
           "EDGE", "AGENT", "INSTALL_HINT"]

EDGE = "edge"
AGENT = "edge-agent"
_POLL_S = 0.1
_STOP_GRACE_S = 10.0
INSTALL_HINT = ("HAProxy is not installed: `sudo apt-get install haproxy` (Debian/Ubuntu), "
                "or `make sysdeps`; or set PITCHEY_HAPROXY to its path")


class StartError(RuntimeError):
    """A child did not come up; the message says which and why."""


class HaproxyMissing(StartError):
    """No haproxy executable: the geo topology never falls back to anything else."""


class ConfigRejected(StartError):
    """HAProxy refused the generated configuration; the message is HAProxy's own."""


# Debian installs haproxy in /usr/sbin, which a non-root user's PATH often lacks.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def haproxy_binary(environ: Mapping[str, str] = os.environ,
                   sbin: tuple[str, ...] = _SBIN) -> str:
    """The haproxy executable (PITCHEY_HAPROXY, else the PATH, else the `sbin` folders), or
    HaproxyMissing."""
    configured = environ.get("PITCHEY_HAPROXY")
    path = environ.get("PATH", os.defpath)
    found = shutil.which(configured or "haproxy", path=path) or (
        None if configured or not sbin else shutil.which("haproxy", path=os.pathsep.join(sbin)))
    if found is None:
        raise HaproxyMissing(INSTALL_HINT if not configured
                             else f"PITCHEY_HAPROXY={configured} is not an executable")
    return found


def check_haproxy_config(binary: str, path: Path, source: str,
                         pass_fds: tuple[int, ...] = ()) -> None:
    """`haproxy -c`: raises ConfigRejected with HAProxy's alerts when it refuses `path`,
    the configuration generated from the regions file `source`."""
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True,
                            text=True, pass_fds=pass_fds, timeout=30)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        alerts = [line.split(":", 1)[-1].strip() if "]" in line else line
                  for line in output if "ALERT" in line] or output[-3:]
        raise ConfigRejected(f"HAProxy rejected the configuration generated from {source}:\n  "
                             + "\n  ".join(alerts))


@dataclass
class ChildProcess:
    name: str
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    died_at: float | None = None
    exit_code: int | None = None
    history: list[tuple[float, str]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child needs to rebuild `settings` with Settings.from_environ."""
    env = {
        "PITCHEY_SQLITE_PATH": settings.sqlite_path,
        "PITCHEY_DB_POOL_SIZE": str(settings.db_pool_size),
        "PITCHEY_CACHE_TTL_PITCHES": str(settings.cache_ttl_pitches_s),
        "PITCHEY_CACHE_TTL_DASHBOARD": str(settings.cache_ttl_dashboard_s),
        "PITCHEY_SESSION_TTL": str(settings.session_ttl_s),
        "PITCHEY_RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "PITCHEY_TRUST_FORWARDED_FOR": "true",
        "PITCHEY_FRONTEND_ORIGIN": settings.frontend_origin,
        "PITCHEY_COOKIE_SECURE": "true" if settings.cookie_secure else "false",
        "PITCHEY_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "PITCHEY_ARGON2_TIME_COST": str(settings.argon2_time_cost),
        "PITCHEY_ARGON2_MEMORY_KIB": str(settings.argon2_memory_kib),
        "OTEL_SERVICE_NAME": settings.otel_service_name,
        "OTEL_TRACES_SAMPLER": settings.otel_traces_sampler,
        "OTEL_TRACES_SAMPLER_ARG": str(settings.otel_traces_sampler_arg),
    }
    optional = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": settings.otel_exporter_otlp_endpoint,
        "PITCHEY_SPANS_FILE": settings.otel_spans_file,
    }
    env.update({name: value for name, value in optional.items() if value})
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor goes away (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(
        self,
        config: GeoConfig,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = 8001,
        regions_file: str | None = None,
        python: str = sys.executable,
        haproxy: str | None = None,
        output: IO[bytes] | int | None = None,
        extra_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.host = host
        self.port = port
        self.regions_file = str(Path(regions_file).resolve()) if regions_file else None
        self._python = python
        self.haproxy = haproxy or haproxy_binary()
        self._output = output
        self._extra_env = dict(extra_env or {})
        self._clock = clock
        self._log = log or (lambda line: print(f"pitchey supervisor: {line}", flush=True))
        self._workdir = Path(tempfile.mkdtemp(prefix="pitchey-geo-"))
        self.generations_file = self._workdir / "generations"
        self.runtime_socket = self._workdir / "haproxy.sock"
        self.haproxy_config = self._workdir / "haproxy.cfg"
        self.children: dict[str, ChildProcess] = {}
        self.stopping = False

    # -- addresses ---------------------------------------------------------------------------

    @property
    def edge_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.children[EDGE].port}"

    def region_url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.children[region].port}"

    def pids(self) -> dict[str, int | None]:
        return {name: child.pid if child.alive else None for name, child in self.children.items()}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (primary first), the status agent and HAProxy; wait until each
        answers. HAProxy's configuration is checked before HAProxy starts."""
        deadline = self._clock() + self.config.supervisor.start_timeout_s
        ordered = sorted(self.config.names, key=lambda n: n != self.config.primary_region)
        try:
            self._precheck()
            SharedGenerations.create(self.generations_file).close()
            for index, region in enumerate(ordered):
                child = ChildProcess(region, 0, self._worker_argv(region))
                self.children[region] = child
                self._spawn(child)
                if index == 0:  # the primary migrates; the others find the schema ready
                    self._wait_ready(child, self.region_url(region) + "/health", deadline)
            for region in ordered[1:]:
                self._wait_ready(self.children[region], self.region_url(region) + "/health",
                                 deadline)
            agent = ChildProcess(AGENT, 0, self._agent_argv())
            self.children[AGENT] = agent
            self._spawn(agent)
            self.children[EDGE] = ChildProcess(EDGE, self.port, [])
            self._spawn(self.children[EDGE])
            self._wait_ready(self.children[EDGE], self.edge_url + "/status", deadline)
        except BaseException:
            self.stop()
            raise

    def _precheck(self) -> None:
        """`haproxy -c` on the configuration with placeholder addresses, before any process
        starts: a configuration HAProxy refuses starts nothing."""
        placeholder = ("127.0.0.1", 9)
        layout = EdgeLayout(bind="127.0.0.1:9", workers=dict.fromkeys(self.config.names,
                                                                       placeholder),
                            agent=placeholder, runtime_socket=str(self.runtime_socket),
                            rate_limit_per_minute=self.settings.rate_limit_per_minute,
                            max_body_bytes=self.settings.max_body_bytes,
                            max_connections=_connections_allowed())
        self.haproxy_config.write_text(render_haproxy_config(self.config, layout),
                                       encoding="utf-8")
        check_haproxy_config(self.haproxy, self.haproxy_config, self.config.source)

    def _worker_argv(self, region: str) -> list[str]:
        argv = [self._python, "-m", "pitchey.geo.worker", "--region", region,
                "--generations", str(self.generations_file)]
        return argv + (["--regions", self.regions_file] if self.regions_file else [])

    def _agent_argv(self) -> list[str]:
        argv = [self._python, "-m", "pitchey.geo.edge_status", "--socket",
                str(self.runtime_socket),
                "--rate-limit", str(self.settings.rate_limit_per_minute)]
        for region in self.config.names:
            argv += ["--worker", f"{region}={self.region_url(region)}"]
        return argv + (["--regions", self.regions_file] if self.regions_file else [])

    def layout(self, bind: str) -> EdgeLayout:
        return EdgeLayout(
            bind=bind,
            workers={name: ("127.0.0.1", self.children[name].port) for name in self.config.names},
            agent=("127.0.0.1", self.children[AGENT].port),
            runtime_socket=str(self.runtime_socket),
            rate_limit_per_minute=self.settings.rate_limit_per_minute,
            max_body_bytes=self.settings.max_body_bytes,
            retry_after_s=self.config.priorities.retry_after_s,
            max_connections=_connections_allowed(),
        )

    def _edge_argv(self, fd: int) -> list[str]:
        """Writes HAProxy's configuration for the socket `fd`, checks it, and returns the
        command that runs HAProxy in the foreground on it."""
        text = render_haproxy_config(self.config, self.layout(f"fd@{fd}"))
        self.haproxy_config.write_text(text, encoding="utf-8")
        check_haproxy_config(self.haproxy, self.haproxy_config, self.config.source,
                             pass_fds=(fd,))
        return [self.haproxy, "-db", "-f", str(self.haproxy_config)]

    def _env(self, child: ChildProcess) -> dict[str, str]:
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env.update(self._extra_env)
        env["PITCHEY_SUPERVISOR_PID"] = str(os.getpid())
        if child.name not in (EDGE, AGENT):
            env["PITCHEY_REGION"] = child.name
        return env

    def _spawn(self, child: ChildProcess) -> None:
        sock = listening_socket(self.host if child.name == EDGE else "127.0.0.1", child.port)
        try:
            child.port = sock.getsockname()[1]
            fd = sock.fileno()
            argv = self._edge_argv(fd) if child.name == EDGE else [*child.argv, "--fd", str(fd)]
            child.process = subprocess.Popen(
                argv, pass_fds=(fd,), env=self._env(child),
                stdout=self._output, stderr=self._output, preexec_fn=_die_with_parent,
            )
        finally:
            sock.close()  # the child has its own copy; a dead child must refuse connections
        child.died_at = None
        child.exit_code = None
        child.history.append((time.time(), f"started pid {child.process.pid}"))

    def _wait_ready(self, child: ChildProcess, url: str, deadline: float) -> None:
        while True:
            if not child.alive:
                code = child.process.returncode if child.process else None
                raise StartError(f"{child.name} exited with code {code} while starting")
            if _answers(url):
                return
            if self._clock() > deadline:
                raise StartError(f"{child.name} did not answer {url} within "
                                 f"{self.config.supervisor.start_timeout_s:g} s")
            time.sleep(_POLL_S)

    def poll(self) -> None:
        """Notice dead children and restart those whose delay has passed."""
        if self.stopping:
            return
        now = self._clock()
        for child in self.children.values():
            if child.process is None or child.alive:
                continue
            if child.died_at is None:
                child.died_at = now
                child.exit_code = child.process.returncode
                child.history.append((time.time(), f"exited with code {child.exit_code}"))
                self._log(f"{child.name} (pid {child.pid}) exited with code {child.exit_code}; "
                          f"restarting in {self.config.supervisor.restart_delay_s:g} s")
            if now - child.died_at >= self.config.supervisor.restart_delay_s:
                self.restart(child.name)

    def restart_dead(self) -> list[str]:
        """Restart every dead child now (SIGUSR1)."""
        restarted = []
        for child in self.children.values():
            if child.process is not None and not child.alive and not self.stopping:
                self.restart(child.name)
                restarted.append(child.name)
        return restarted

    def restart(self, name: str) -> None:
        child = self.children[name]
        if child.alive:
            self.kill(name, signal.SIGTERM)
            _wait(child.process, _STOP_GRACE_S)
        try:
            self._spawn(child)
        except (OSError, StartError) as exc:  # the port is still held; poll() tries again
            self._log(f"cannot restart {name} on port {child.port} yet: {exc}")
            child.died_at = self._clock()
            return
        child.restarts += 1
        self._log(f"{name} restarted (pid {child.pid})")

    def kill(self, name: str, signum: int = signal.SIGKILL) -> int | None:
        """Send `signum` to one child; returns the pid it went to."""
        child = self.children[name]
        if not child.alive:
            return None
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.process.pid, signum)
        return child.process.pid

    def stop(self) -> None:
        """SIGTERM every child (edge first), SIGKILL any still running after the grace."""
        self.stopping = True
        order = [EDGE, AGENT, *[n for n in self.children if n not in (EDGE, AGENT)]]
        for name in order:
            if name in self.children:
                self.kill(name, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for child in self.children.values():
            if child.process is not None and not _wait(child.process,
                                                       deadline - time.monotonic()):
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                child.process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def describe(self) -> list[str]:
        lines = [f"edge    {self.edge_url}  (HAProxy pid {self.children[EDGE].pid}, routing "
                 f"{self.config.routing}, config {self.haproxy_config})",
                 f"agent   http://127.0.0.1:{self.children[AGENT].port}  (pid "
                 f"{self.children[AGENT].pid}: /status, runtime API {self.runtime_socket})"]
        for region in self.config.names:
            child = self.children[region]
            primary = "  primary" if region == self.config.primary_region else ""
            lines.append(f"{region:<8}{self.region_url(region)}  (pid {child.pid}){primary}")
        return lines


def _connections_allowed() -> int:
    """Connections HAProxy can hold with this process's descriptor limit (two descriptors
    each, and some for listeners, checks and logs)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    return max(64, (limit - 200) // 2)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback
            return bool(response.status < 500)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait(process: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    if process is None:
        return True
    try:
        process.wait(timeout=max(0.0, timeout_s))
        return True
    except subprocess.TimeoutExpired:
        return False


def serve_geo(settings: Settings, *, port: int, regions_file: str | None) -> ExitCode:
    """`pitchey serve --topology geo`: run the topology until Ctrl-C or SIGTERM."""
    from pitchey.geo.config_file import GeoConfigError, load_geo_config

    try:
        config = load_geo_config(regions_file)
        supervisor = Supervisor(config, settings, host=settings.host, port=port,
                                regions_file=regions_file)
    except (GeoConfigError, HaproxyMissing) as exc:
        print(f"pitchey: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    stop_requested: list[int] = []
    restart_requested: list[int] = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda s, f: stop_requested.append(s)),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: stop_requested.append(s)),
        signal.SIGUSR1: signal.signal(signal.SIGUSR1, lambda s, f: restart_requested.append(s)),
    }
    try:
        try:
            supervisor.start()
        except ConfigRejected as exc:
            print(f"pitchey: {exc}", file=sys.stderr)
            return ExitCode.CONFIG
        except (StartError, OSError) as exc:
            print(f"pitchey: the geo topology did not start: {exc}", file=sys.stderr)
            return ExitCode.BREACH
        print("pitchey: geo topology up (Ctrl-C stops every process)", flush=True)
        for line in supervisor.describe():
            print(f"  {line}", flush=True)
        print(f"pitchey: listening on {supervisor.edge_url} (edge)", flush=True)
        while not stop_requested:
            if restart_requested:
                restart_requested.clear()
                supervisor.restart_dead()
            supervisor.poll()
            time.sleep(_POLL_S)
        return ExitCode.OK
    finally:
        supervisor.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> ExitCode:
    parser = CommandParser(prog="python -m pitchey.geo.supervisor",
                                     description="Run the geo topology: HAProxy edge + regional "
                                     "workers.")
    parser.add_argument("--host", default=None, help="edge address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="edge port (default 8001)")
    parser.add_argument("--regions", default=None, metavar="FILE", help="regions YAML")
    args = parser.parse_args(argv)
    from pitchey.settings import SettingsError

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = Settings.from_environ(os.environ, **overrides)
    except SettingsError as exc:
        print(f"pitchey: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    return serve_geo(settings, port=settings.port, regions_file=args.regions)


if __name__ == "__main__":
    sys.exit(main())
