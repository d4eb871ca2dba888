#!/usr/bin/env python3
"""Documents per hour per dyno on the Gemini path, for docs/PERFORMANCE.md.

The release worker (its supervisor and children, as on a dyno) reads N copies of the example
deposit through the Gemini contract fake answering in LATENCY ms, once with one child
(WORKER_PROCESSES=1) and once with WORKER_PROCESSES=auto, against the local Redis with a
40-client budget. For each run: wall time from the first push to the last job done, documents
per hour, the most jobs running at once, and the dyno's peak RSS (the supervisor and its
children, sampled every 100 ms; the limit is MEMORY_WARNING_MB, 400).

Usage: scripts/bench-throughput.py [N] [LATENCY_MS]   (default 24 documents, 3000 ms)
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "target", "release", "fom-worker")
FAKE = os.path.join(ROOT, "target", "release", "fake-gemini")
PDF = os.path.join(ROOT, "examples", "deposit.pdf")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tree_rss_mb(pid):
    def rss(p):
        try:
            return int(open(f"/proc/{p}/statm").read().split()[1]) * 4096 / 1048576
        except (OSError, IndexError, ValueError):
            return 0.0
    kids = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            kids += [int(k) for k in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        pass
    return rss(pid) + sum(rss(k) for k in kids), len(kids)


def run(n, processes, gemini_url, files):
    env = dict(os.environ, KEY_PREFIX=f"bench-tp-{uuid.uuid4().hex[:8]}", RUST_LOG="warn",
               WORKER_PROCESSES=processes, REDIS_MAX_CLIENTS="40", MEMORY_WARNING_MB="400",
               DYNO_MEMORY_MB="512", EXTRACTOR="gemini", GEMINI_API_KEY="test-key",
               GEMINI_BASE_URL=gemini_url, GEMINI_RPM="0", UPLOAD_STORE="redis")
    sup = subprocess.Popen([WORKER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        out = subprocess.run([WORKER, "enqueue", *files], env=env, capture_output=True, text=True,
                             check=True).stdout
        jobs = [l.split("\t")[0] for l in out.splitlines() if not l.startswith("deposit\t")]
        assert len(jobs) == n, out
        started = time.time()
        peak, most_running, last_check = 0.0, 0, 0.0
        while True:
            total, _ = tree_rss_mb(sup.pid)
            peak = max(peak, total)
            if time.time() - last_check > 0.5:
                last_check = time.time()
                listed = json.loads(subprocess.run([WORKER, "jobs", "list", "--json", "--limit", str(n + 5)],
                                                   env=env, capture_output=True, text=True).stdout)
                states = [j["state"] for j in listed]
                most_running = max(most_running, states.count("running"))
                if states.count("done") == n:
                    break
                if time.time() - started > 1800:
                    sys.exit("not done in 30 min")
            time.sleep(0.1)
        took = time.time() - started
        return took, n / took * 3600, most_running, peak
    finally:
        sup.terminate()
        sup.wait(timeout=40)
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", env["KEY_PREFIX"] + "*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "del", *keys[i:i + 500]], capture_output=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    latency = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    port = free_port()
    fake = subprocess.Popen([FAKE, "--port", str(port), "--latency-ms", str(latency)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp()
    try:
        time.sleep(0.5)
        files = []
        for i in range(n):
            path = os.path.join(tmp, f"deposit-{i:03}.pdf")
            shutil.copy(PDF, path)
            files.append(path)
        url = f"http://127.0.0.1:{port}"
        print(f"{n} documents (the example deposit, one Gemini request each), answers in {latency} ms")
        print("| workers | wall time | documents per hour | most running at once | dyno peak RSS |")
        print("|---|---|---|---|---|")
        for label, processes in [("1 child", "1"), ("auto", "auto")]:
            took, per_hour, most, peak = run(n, processes, url, files)
            print(f"| {label} | {took:.1f} s | {per_hour:,.0f} | {most} | {peak:.0f} MB |")
    finally:
        fake.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
