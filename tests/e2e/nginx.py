"""Debian's nginx as a reverse proxy in front of a test server, on loopback, run by the test.

Installed by `.ci/install-nginx`; a missing nginx fails the test (nothing is skipped).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

#: in the foreground, one process (no master switching users): nothing needs root
DIRECTIVES = "daemon off; master_process off;"

CONFIG = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen {listen}{ssl};
        {certificates}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            {bind}
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            # The client's address as nginx saw it, replacing whatever the client sent.
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` and its key, made by the openssl command line."""
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def config(
    tmp: Path | str,
    listen: str,
    upstream_port: int,
    *,
    bind: str | None = None,
    tls: tuple[Path, Path] | None = None,
) -> str:
    """nginx proxying `listen` (an address and port, or a port) to 127.0.0.1:`upstream_port`,
    websockets and other upgraded connections included; its files under `tmp`."""
    return CONFIG.format(
        tmp=tmp,
        listen=listen,
        upstream=upstream_port,
        bind=f"proxy_bind {bind};" if bind else "",
        ssl=" ssl" if tls else "",
        certificates=f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else "",
    )


def command(tmp: Path, conf: Path) -> list[str]:
    """Debian's nginx in the foreground on `conf`, its files under `tmp`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return [binary, "-e", str(tmp / "error.log"), "-p", str(tmp), "-c", str(conf), "-g", DIRECTIVES]


@contextmanager
def nginx(
    upstream_port: int, tmp: Path, *, bind: str | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """nginx proxying to 127.0.0.1:`upstream_port`; yields its URL. `bind`: its source address;
    `tls`: (certificate, key) to terminate HTTPS with."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(config(tmp, f"127.0.0.1:{port}", upstream_port, bind=bind, tls=tls))
    process = subprocess.Popen(
        command(tmp, conf), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:  # polling a process we do not control: there is no event to await
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(tmp / 'error.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
