"""Debian's nginx running the shipped deploy/nginx-hls.conf in front of a node.

The file is used as operators use it, with three things replaced: the node's address,
the port nginx listens on and the cache directory. A main configuration around it keeps
everything (pid, logs, temp files, cache) in one directory of the test's. `make test`
installs nginx (`make check-nginx`); nginx is started and stopped by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
SHIPPED = ROOT / "deploy" / "nginx-hls.conf"

__all__ = ["NGINX", "Nginx", "origin_requests", "render_site"]


def render_site(node_port: int, listen_port: int, cache_dir: Path) -> str:
    """deploy/nginx-hls.conf for a node on ``node_port``, nginx on ``listen_port``."""
    text = SHIPPED.read_text()
    replaced = (
        text.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{node_port};")
        .replace("listen 8081;", f"listen 127.0.0.1:{listen_port};")
        .replace("/var/cache/nginx/parley-hls", str(cache_dir))
    )
    for needle in (str(node_port), str(listen_port), str(cache_dir)):
        if needle not in replaced:
            raise RuntimeError(f"deploy/nginx-hls.conf changed shape: {needle} not placed")
    return replaced


@dataclass
class Nginx:
    directory: Path
    node_port: int
    port: int
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    _stderr: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        d = self.directory
        for sub in ("cache", "temp", "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "site.conf").write_text(render_site(self.node_port, self.port, d / "cache"))
        temp = d / "temp"
        # As root, nginx's workers would run as nobody, who cannot enter the test's
        # private temporary directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(
            f"""{user}daemon off;
worker_processes {self.workers};
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 16000; }}
http {{
    include /etc/nginx/mime.types;
    access_log {d}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {d}/site.conf;
}}
"""
        )
        self._stderr = open(d / "logs" / "stderr.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "logs/error.log")],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.log()}")
            try:
                httpx.get(f"{self.base_url}/api/v1/config", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not start in {timeout} s: {self.log()}")

    def pids(self) -> list[int]:
        """The master and its workers (their CPU is nginx's CPU)."""
        if self.process is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [self.process.pid, *(int(p) for p in out.split())]

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.directory / "logs" / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_ACCESS = re.compile(r'"(GET|HEAD) (/api/v1/rooms/[^ "]+/hls/[^ "]+) HTTP/1\.[01]" (\d{3})')


def origin_requests(node_log: str) -> list[tuple[str, int]]:
    """(path with query, status) of every HLS request in a node's access log (uvicorn's)."""
    return [(m.group(2), int(m.group(3))) for m in _ACCESS.finditer(node_log)]
