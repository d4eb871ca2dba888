#!/usr/bin/env python3
"""fom-web's peak RSS under a multipart flood: one chunked upload (no Content-Length) of N
empty parts named "files", generated as it is sent. For each N a fresh fom-web (default
settings, the local Redis, its own KEY_PREFIX) is started, signed in to, given a deposit and
sent the flood; the answer's status and verdicts, and the process's VmHWM, are printed.

Usage: scripts/bench-upload-flood.py [--bin PATH] N [N ...]
  (default: target/release/fom-web; build it first with `make build` or
  `cargo build --release -p fom-web`)
"""

import argparse
import http.client
import json
import os
import secrets
import base64
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
BOUNDARY = "FloodBoundary7Mq"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm(pid, key):
    """VmRSS / VmHWM of a process, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res, data


def flood(port, cookie, deposit, parts):
    """Sends the chunked flood; returns (status, answer JSON, parts written, seconds)."""
    origin = f"http://127.0.0.1:{port}"
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(600)
    s.sendall(
        (
            f"POST /api/deposits/{deposit}/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Origin: {origin}\r\nCookie: {cookie}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    got = bytearray()
    answered = threading.Event()

    def read():
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                break
            if not b:
                break
            got.extend(b)
            answered.set()

    reader = threading.Thread(target=read)
    reader.start()
    start = time.monotonic()
    written = 0
    batch = []
    try:
        for i in range(parts):
            sep = "\r\n" if i else ""
            batch.append(
                f'{sep}--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="e{i}.pdf"\r\n\r\n'
            )
            if len(batch) == 500 or i == parts - 1:
                data = "".join(batch).encode()
                s.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                written = i + 1
                batch = []
        end = f"\r\n--{BOUNDARY}--\r\n".encode()
        s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(end), end))
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        print(f"  the server closed the connection after {written:,} parts ({e})")
    reader.join()
    secs = time.monotonic() - start
    s.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    status = int(head[9:12] or 0)
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        body = out
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    return status, answer, written, secs


def run(binary, parts, redis_url):
    port = free_port()
    prefix = f"bench-flood-{secrets.token_hex(6)}"
    env = dict(
        os.environ,
        PORT=str(port),
        REDIS_URL=redis_url,
        KEY_PREFIX=prefix,
        WEB_CONCURRENCY="2",
        APP_PASSWORD=PASSWORD,
        SESSION_SECRET=base64.b64encode(secrets.token_bytes(64)).decode(),
        INSECURE_COOKIES="1",
        RUST_LOG="warn",
    )
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                request(port, "GET", "/health")
                break
            except OSError:
                time.sleep(0.1)
        origin = f"http://127.0.0.1:{port}"
        res, _ = request(
            port,
            "POST",
            "/login",
            urlencode({"password": PASSWORD}),
            {"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"},
        )
        cookie = (res.getheader("Set-Cookie") or "").split(";")[0]
        res, data = request(
            port,
            "POST",
            "/api/deposits",
            json.dumps({"name": "flood"}),
            {"Origin": origin, "Cookie": cookie, "Content-Type": "application/json"},
        )
        deposit = json.loads(data)["id"]
        idle = vm(proc.pid, "VmRSS")
        status, answer, written, secs = flood(port, cookie, deposit, parts)
        peak = vm(proc.pid, "VmHWM")
        after = vm(proc.pid, "VmRSS")
        files = (answer or {}).get("files") or []
        last = files[-1].get("code") if files else None
        print(
            f"{parts:>9,} parts: answer {status}, {len(files):,} verdicts (last: {last}), "
            f"{written:,} parts written in {secs:.1f} s; fom-web RSS idle {idle:.1f} MB, "
            f"peak (VmHWM) {peak:.1f} MB, after {after:.1f} MB"
        )
    finally:
        proc.terminate()
        proc.wait()
        keys = subprocess.run(
            ["redis-cli", "-u", redis_url, "--scan", "--pattern", f"{prefix}:*"],
            capture_output=True,
            text=True,
        ).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-u", redis_url, "del", *keys[i : i + 500]], capture_output=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=str(ROOT / "target/release/fom-web"))
    p.add_argument("parts", nargs="+", type=int)
    args = p.parse_args()
    if not Path(args.bin).is_file():
        sys.exit(f"bench-upload-flood: {args.bin} is missing; build it first (make build)")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    for n in args.parts:
        run(args.bin, n, redis_url)


if __name__ == "__main__":
    main()
