#!/usr/bin/env python3
"""Queue figures for docs/PERFORMANCE.md, against a real Redis and the release binary.

1. Enqueue-to-start latency: N jobs queued one at a time to an idle worker (each waits for the
   previous to finish), latency = job started_at - created_at, p50/p95.
2. Budget respawn time: WORKER_MAX_JOBS=1 so every job ends its child; time from the
   supervisor's "left over its budget" line to the fresh child's "worker ... start" line.

Usage: scripts/bench-queue.py [N]   (default 200; needs `make build` and a Redis at REDIS_URL)
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time, uuid
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "target", "release", "fom-worker")
CSV = os.path.join(ROOT, "examples", "online-gifts.csv")


def run(env, *args):
    return subprocess.run([WORKER, *args], env=env, capture_output=True, text=True, check=True).stdout


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(n, extra_env, label):
    env = dict(os.environ, KEY_PREFIX=f"bench-{uuid.uuid4().hex[:8]}", RUST_LOG="info", **extra_env)
    tmp = tempfile.mkdtemp()
    log = open(os.path.join(tmp, "supervisor.log"), "w")
    sup = subprocess.Popen([WORKER], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        time.sleep(1.0)
        latencies = []
        for i in range(n):
            lines = [l for l in run(env, "enqueue", CSV).splitlines() if not l.startswith("deposit\t")]
            job = lines[0].split("\t")[0]
            deadline = time.time() + 30
            while True:
                rec = json.loads(run(env, "jobs", "show", job))
                if rec["state"] == "done":
                    break
                if time.time() > deadline:
                    sys.exit(f"job {job} not done: {rec}")
                time.sleep(0.01)
            latencies.append(rec["started_at"] - rec["created_at"])
        return env, latencies, os.path.join(tmp, "supervisor.log")
    finally:
        sup.terminate()
        sup.wait(timeout=30)
        log.close()
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", env["KEY_PREFIX"] + "*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "del", *keys[i:i + 500]], capture_output=True)


def stamp(line):
    return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    _, lat, _ = measure(n, {}, "latency")
    print(f"enqueue-to-start latency over {n} jobs: p50 {pct(lat, 50)} ms, p95 {pct(lat, 95)} ms, "
          f"max {max(lat)} ms")
    m = min(n, 30)
    _, _, logpath = measure(m, {"WORKER_MAX_JOBS": "1"}, "respawn")
    lines = open(logpath).read().splitlines()
    gaps = []
    for i, line in enumerate(lines):
        if "left over its budget" in line:
            ready = next((l for l in lines[i + 1:] if re.search(r"Memory Monitor: worker \S+ start", l)), None)
            if ready:
                gaps.append((stamp(ready) - stamp(line)).total_seconds() * 1000)
    print(f"budget respawn (exit to fresh child ready) over {len(gaps)} respawns: "
          f"p50 {statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms")


if __name__ == "__main__":
    main()
