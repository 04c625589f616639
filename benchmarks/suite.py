#!/usr/bin/env python3
"""libsplit's benchmark driver: split against local against offload, across link rates, on an
emulated weaker device, with the Python peer in the same run. One command:

  /usr/bin/python3 benchmarks/suite.py                  # the default sweep (as root: CPU quota)
  /usr/bin/python3 benchmarks/suite.py --preset quick   # a few minutes, to check a setup
  /usr/bin/python3 benchmarks/suite.py --readme         # and rewrite README's results section

It builds what is missing (tools/build.sh), generates the image bundles (random weights: latency
only) and their inputs, then, in order:

  single     single stream (the next request when the previous answered; p90 is the headline, as
             in MLPerf's edge single-stream scenario): split-server on 127.0.0.1 (1 worker x
             --edge-threads LibTorch threads), split-linkemu between it and the device (--rates
             in both directions, --rtt-ms round trip), split-client confined to --device-quota of
             one core (cgroup v1 CPU quota; needs root, otherwise unconfined and said so) with
             --device-threads LibTorch threads. Every strategy of a bundle runs in one client
             process, each input through every strategy in turn; the rounds repeat the whole
             sweep, so slow drift of the machine lands on every cell alike. The Python peer
             (benchmarks/pickle_baseline.py: python3-torch head, quantized tensor pickled over TCP,
             python3-torch tail) runs each bundle's default split behind its own emulator at the
             same rate, on the same device quota: strategy "peer".
  accuracy   every fixed strategy of the labelled bundle (Fashion-MNIST) on --accuracy-requests
             test images, on loopback: wire bytes against top-1.
  overhead   per-request overhead (total - head - tail) on loopback, single stream, libsplit
             (bench-overhead) against the peer, every bundle's default split.
  throughput server throughput, 8 closed-loop clients, split-server (2 workers x 1 thread)
             against the peer's threaded server, alternating over --throughput-rounds.
  poisson    MLPerf's server scenario: --poisson-clients devices whose requests (the default
             split's bottleneck, precomputed) arrive as one Poisson process (bench-load); the rate
             steps up by --poisson-step until the p99 latency bound (--p99-ms) or an unanswered
             request ends it; the highest rate that met the bound is reported.

Writes under --out: results.json (environment, configuration and every figure), single_stream.csv,
peer.csv, poisson.csv, report.md and plots/*.png (latency against link rate per strategy, wire
bytes against accuracy, stage breakdown); the raw client files under raw/. Power is sampled where
the board offers it (benchmarks/power.py: Jetson INA3221; Raspberry Pi throttling flags, with such
runs discarded) and energy per inference reported; elsewhere it is reported as absent.
"""
import argparse
import csv
import datetime
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import power  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
FMNIST = "/usr/share/datasets/fashion-mnist"
BOTTLEFIT_PAPER = {"local": 89.0, "offload": 55.0}  # BottleFit's best latency reductions, in percent

BUNDLES = {
    # name: (bundle directory, extra export splits, image input?)
    "fmnist": ("models/fmnist-resnet", None, False),
    "resnet50": ("build/bench/models/resnet50", ["bottlefit", "layer4"], True),
    "mobilenet_v2": ("build/bench/models/mobilenet_v2", ["bottlefit", "features.13"], True),
}

PRESETS = {
    "default": dict(bundles="fmnist,resnet50,mobilenet_v2", rates="1,2,5,10,20,50", rounds=2, requests_fmnist=50,
                    requests_image=12, accuracy_requests=2000, overhead_fmnist=1000, overhead_image=60,
                    throughput_seconds=10, throughput_rounds=2, throughput_bundles="fmnist,resnet50",
                    poisson_seconds=6, poisson_max_steps=10),
    "quick": dict(bundles="fmnist,mobilenet_v2", rates="2,20", rounds=1, requests_fmnist=20, requests_image=3,
                  accuracy_requests=300, overhead_fmnist=200, overhead_image=10, throughput_seconds=3,
                  throughput_rounds=1, throughput_bundles="fmnist", poisson_seconds=2, poisson_max_steps=4),
}
# busy-poll overhead setting: long enough to cover every bundle's head and tail here, so that
# neither side sleeps between a request and its answer (ClientOptions/ServerOptions::busy_poll_us),
# and the server runs tails up to as long on the I/O thread that read them (inline_tail_max_us):
# the configuration of an edge serving one latency-bound device.
BUSY_POLL_US = 250000
P99_MS = {"fmnist": 10.0, "resnet50": 400.0, "mobilenet_v2": 100.0}


def log(msg):
    print(msg, flush=True)


def die(msg):
    print(f"suite: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def pct(values, q):
    """The q-quantile by the nearest-rank method (as the C++ tools compute it)."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def pcts(values):
    return {"p50": pct(values, 0.5), "p90": pct(values, 0.9), "p99": pct(values, 0.99),
            "max": max(values) if values else None, "n": len(values)}


def rate_name(rate):
    """A link setting's label: its emulated rate, or the real network (0) with --server."""
    return "network" if rate == 0 else f"{rate:g}"


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


class Harness:
    """Processes, emulators and cgroups started by this run; all stopped and removed at exit."""

    def __init__(self, out):
        self.out = out
        self.procs = []
        self.cgroups = []
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        for cg in self.cgroups:
            if os.path.isdir(cg):
                try:
                    os.rmdir(cg)
                except OSError as e:
                    print(f"suite: could not remove {cg}: {e}", file=sys.stderr)
        self.cgroups = []

    def start(self, name, cmd, patterns, timeout=300, stdin=None):
        """Starts cmd, returns (process, [match of each pattern]) once its stdout printed them."""
        err = open(os.path.join(self.out, "logs", f"{name}.log"), "w")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=stdin, text=True, cwd=ROOT)
        self.procs.append(p)
        lines = queue.Queue()

        def pump():  # keeps draining stdout so the process never blocks on it
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        found = [None] * len(patterns)
        deadline = time.monotonic() + timeout
        while not all(found):
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                die(f"{name} did not start (see {os.path.relpath(err.name, ROOT)})")
            for i, pat in enumerate(patterns):
                m = re.search(pat, line)
                if m and not found[i]:
                    found[i] = m
        return p, found

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
        p.wait(timeout=60)
        self.procs.remove(p)

    def server(self, name, models, workers, threads):
        p, (m,) = self.start(name, [bin_tool("split-server"), "--models", models, "--listen", "127.0.0.1:0",
                                    "--threads", str(workers), "--torch-threads", str(threads), "--log-level", "warn",
                                    "--max-queue", "1024"],
                             [r"listening on port (\d+)"])
        return p, int(m.group(1))

    def linkemu(self, name, target_port, rtt_ms):
        half_us = int(rtt_ms * 500)
        p, (a, c) = self.start(name, [bin_tool("split-linkemu"), "--listen", "127.0.0.1:0", "--target",
                                      f"127.0.0.1:{target_port}", "--delay", f"{half_us}us", "--control",
                                      "127.0.0.1:0", "--log-level", "error"],
                               [r"listening on .*\(port (\d+)\)", r"control on .*\(port (\d+)\)"], timeout=30)
        return Emulator(p, int(a.group(1)), int(c.group(1)))

    def device(self, quota, threads):
        """A weaker device: a cgroup v1 CPU quota (fraction of one core), or unconfined."""
        d = Device(quota, threads)
        if quota is None:
            return d
        if os.geteuid() != 0 or not os.access("/sys/fs/cgroup/cpu", os.W_OK):
            d.description = f"unconfined (a CPU quota of {quota} was asked; it needs root and cgroup v1 cpu)"
            return d
        cg = f"/sys/fs/cgroup/cpu/libsplit-suite-{os.getpid()}-{len(self.cgroups)}"
        os.mkdir(cg)
        self.cgroups.append(cg)
        # The shortest period whose quota is still the kernel's 1 ms minimum: the device runs in
        # short slices (1 ms on, 3 ms off at a quarter core) rather than long bursts, so that
        # even a request of a millisecond or two is slowed as on a slower CPU.
        period = min(100000, max(1000, int(math.ceil(1000 / quota))))
        with open(os.path.join(cg, "cpu.cfs_period_us"), "w") as f:
            f.write(str(period))
        with open(os.path.join(cg, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(int(round(quota * period))))
        d.cgroup = cg
        d.description = (f"CPU quota {quota} of one core (cgroup v1, {int(round(quota * period))}/{period} us), "
                         f"{threads} LibTorch thread(s)")
        return d


class Emulator:
    def __init__(self, proc, port, control):
        self.proc, self.port, self.control = proc, port, control

    def set_rate(self, mbit):
        subprocess.run([bin_tool("split-linkemu"), "--send", f"127.0.0.1:{self.control}",
                        f"set both rate={mbit}mbit"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


class Device:
    def __init__(self, quota, threads):
        self.quota, self.threads, self.cgroup = quota, threads, None
        self.description = f"unconfined, {threads} LibTorch thread(s)"
        self.key = f"q{quota}" if quota is not None else "full"

    def enter(self):  # runs in the child between fork and exec
        if self.cgroup:
            with open(os.path.join(self.cgroup, "tasks"), "w") as f:
                f.write(str(os.getpid()))


def bin_tool(name):
    return os.path.join(ROOT, "build/release/tools", name)


def bin_bench(name):
    return os.path.join(ROOT, "build/release/benchmarks", name)


def run(cmd, logfile, timeout, device=None, ok_codes=(0,)):
    with open(logfile, "w") as f:
        try:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout,
                               preexec_fn=device.enter if device else None)
        except subprocess.TimeoutExpired:
            die(f"{os.path.basename(cmd[0])} took over {timeout} s (see {os.path.relpath(logfile, ROOT)})")
    if r.returncode not in ok_codes:
        tail = open(logfile).read()[-800:]
        die(f"{' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd[:6]))} ... failed "
            f"(exit {r.returncode}; {os.path.relpath(logfile, ROOT)}):\n{tail}")
    return r.returncode


# ---------------------------------------------------------------- environment and preparation

def environment(args, device, power_src):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def first(path, default="not exposed"):
        try:
            return open(path).read().strip()
        except OSError:
            return default

    cpu = next((ln.split(":", 1)[1].strip() for ln in first("/proc/cpuinfo", "").splitlines()
                if ln.startswith("model name")), "unknown")
    osname = next((ln.split("=", 1)[1].strip('"') for ln in first("/etc/os-release", "").splitlines()
                   if ln.startswith("PRETTY_NAME=")), "unknown")
    blas = sh(["update-alternatives", "--query", f"libblas.so.3-{sh(['dpkg-architecture', '-qDEB_HOST_MULTIARCH'])}"])
    blas = next((ln.split(":", 1)[1].strip() for ln in blas.splitlines() if ln.startswith("Value:")), "unknown")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "dirty": bool(sh(["git", "status", "--porcelain", "--untracked-files=no"])),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "governor": first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "libtorch": sh(["dpkg-query", "-W", "-f=${Version}", "libtorch-dev"]) or "unknown",
        "python_torch": sh([PY, "-c", "import torch; print(torch.__version__)"]) or "unknown",
        "blas": os.path.basename(os.path.dirname(blas)) if blas != "unknown" else blas,
        "kernel": os.uname().release,
        "os": osname,
        "device": device.description,
        "device_threads": device.threads,
        "edge": (f"split-server at {args.server} (run there by the user)" if args.server else
                 f"split-server, 1 worker x {args.edge_threads} LibTorch threads (single stream); "
                 f"2 workers x 1 thread (throughput, Poisson)"),
        "link": (f"the real network to {args.server}" if args.server else
                 f"split-linkemu on 127.0.0.1: token bucket at the rate in both directions, "
                 f"{args.rtt_ms} ms round trip (half each way)"),
        "power": power_src.description if power_src else "none: no INA3221 rails (Jetson) found; energy not reported",
        "throttling_flags": "Raspberry Pi get_throttled" if power.read_throttled() is not None else "none",
    }


def prepare(args):
    if not args.no_build:
        log("== building (tools/build.sh)")
        r = subprocess.run(["bash", "tools/build.sh"], cwd=ROOT, stdout=subprocess.DEVNULL)
        if r.returncode:
            die("tools/build.sh failed")
    for tool in ("split-server", "split-client", "split-linkemu"):
        if not os.access(bin_tool(tool), os.X_OK):
            die(f"build/release/tools/{tool} is missing (run tools/build.sh, or drop --no-build)")
    models = os.path.join(ROOT, "build/bench/models")
    os.makedirs(models, exist_ok=True)
    link = os.path.join(models, "fmnist-resnet")
    if not os.path.exists(link):
        os.symlink(os.path.join(ROOT, "models/fmnist-resnet"), link)
    bundles = {}
    for name in args.bundles:
        path, splits, image = BUNDLES[name]
        full = os.path.join(ROOT, path)
        exporter = os.path.join(ROOT, "tools/export_torchvision.py")
        manifest_path = os.path.join(full, "manifest.json")
        if splits and (not os.path.exists(manifest_path) or os.path.getmtime(exporter) > os.path.getmtime(manifest_path)):
            log(f"== generating the {name} bundle (random weights: latency only)")
            cmd = [PY, "tools/export_torchvision.py", "--arch", name, "--out", path]
            for s in splits:
                cmd += ["--split", s]
            run(cmd, os.path.join(args.out, "logs", f"export-{name}.log"), 1800)
        manifest = json.load(open(os.path.join(full, "manifest.json")))
        default = manifest.get("default_split") or manifest["splits"][0]["id"]
        strategies = (["local"] + [m["id"] for m in manifest.get("local", [])] + ["offload", "offload-png"] +
                      [s["id"] for s in manifest["splits"]] + ["dynamic"])
        if args.strategies:
            strategies = [s for s in strategies if s in args.strategies]
        bundles[name] = {"dir": full, "manifest": manifest, "name": manifest["name"], "default_split": default,
                         "strategies": strategies, "image": image,
                         "weights": manifest.get("weights", "trained"),
                         "requests": args.requests_image if image else args.requests_fmnist}
    if any(b["image"] for b in bundles.values()):
        need = max(len(args.rates) * (args.requests_image + args.warmup), args.overhead_image + 5)
        images = os.path.join(ROOT, "build/bench/images224")
        if not os.path.exists(os.path.join(images, f"img{need - 1:04d}.png")):
            log("== writing 224x224 inputs (crops of scikit-image's sample photographs when they can be fetched)")
            photos = photo_dir()
            cmd = [PY, "tools/make_bench_images.py", "--size", "224", "--count", str(max(need, 64)), "--out", images]
            if photos:
                cmd += ["--photos", photos]
            run(cmd, os.path.join(args.out, "logs", "images.log"), 600)
        for b in bundles.values():
            if b["image"]:
                b["input"], b["labels"] = images, None
    for b in bundles.values():
        if not b["image"]:
            b["input"] = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
            b["labels"] = os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")
            if not os.path.exists(b["input"]):
                die(f"{b['input']} is missing (Debian package dataset-fashion-mnist; tools/install-deps.sh)")
    return models, bundles


def photo_dir():
    """scikit-image's sample photographs, from Debian's python3-skimage package (downloaded, not
    installed); None if apt cannot fetch it."""
    base = os.path.join(ROOT, "build/bench/skimage")
    if not os.path.isdir(base):
        debs = os.path.join(ROOT, "build/bench/debs")
        os.makedirs(debs, exist_ok=True)
        subprocess.run(["apt-get", "download", "python3-skimage"], cwd=debs, capture_output=True)
        found = sorted(f for f in os.listdir(debs) if f.startswith("python3-skimage_") and f.endswith(".deb"))
        if not found:
            return None
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, found[0]), base], check=False)
    for d, _, _ in os.walk(base):
        if d.endswith(os.path.join("skimage", "data")):
            return d
    return None


# ---------------------------------------------------------------- scenarios

class Progress:
    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def step(self, what):
        el = time.monotonic() - self.t0
        eta = f", about {el / self.done * (self.total - self.done) / 60:.0f} min left" if self.done else ""
        self.done += 1
        log(f"[{self.done}/{self.total}] {what} ({el / 60:.1f} min in{eta})")


def read_samples(path, sampler):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            r["index"] = int(r["index"])
            if r["status"] != "ok":  # a failed request: its code, no times
                rows.append(r)
                continue
            for k in ("start_s", "head_ms", "encode_ms", "network_ms", "queue_ms", "tail_ms", "total_ms"):
                r[k] = float(r[k])
            for k in ("request_bytes", "response_bytes", "predicted", "label"):
                r[k] = int(r[k])
            r["energy_j"] = sampler.energy_between(r["start_s"], r["start_s"] + r["total_ms"] / 1000)
            rows.append(r)
    return rows


def phased(cmd, device, phases, on_phase, logfile, timeout):
    """Runs a client that pauses after each phase ('# paused' on stdout, then a line on stdin):
    on_phase(k) is called before phase k (0 before the start). Returns the exit code."""
    on_phase(0)
    with open(logfile, "w") as log_f:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=ROOT, preexec_fn=device.enter)
        watchdog = threading.Timer(timeout, p.kill)
        watchdog.start()
        k = 0
        try:
            for line in p.stdout:
                log_f.write(line)
                if line.startswith("# paused") and k + 1 < phases:
                    k += 1
                    on_phase(k)
                    p.stdin.write("\n")
                    p.stdin.flush()
            rc = p.wait()
        finally:
            watchdog.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
    if rc < 0:
        die(f"{os.path.basename(cmd[0])} was killed after {timeout} s (see {os.path.relpath(logfile, ROOT)})")
    return rc


def single_stream(args, h, bundles, models, device, power_src):
    log(f"== single stream: {len(bundles)} bundles x {len(args.rates)} link rates x {args.rounds} rounds; "
        f"device: {device.description}")
    if args.server:  # the edge elsewhere, over the real network
        emu, target = None, args.server
    else:
        _, port = h.server("server-single", models, 1, args.edge_threads)
        emu = h.linkemu("linkemu", port, args.rtt_ms)
        target = f"127.0.0.1:{emu.port}"
    peers = {}
    if args.peer_server:
        peers = {name: None for name in bundles}
    elif not args.no_peer and not args.server:
        for name, b in bundles.items():
            p, (m,) = h.start(f"peer-server-{name}", [PY, "benchmarks/pickle_baseline.py", "--serve-only", "--bundle",
                                                      b["dir"], "--split", b["default_split"], "--threads",
                                                      str(args.edge_threads)], [r"^(\d+)$"], stdin=subprocess.PIPE)
            peers[name] = h.linkemu(f"peer-linkemu-{name}", int(m.group(1)), args.rtt_ms)
    # One client process per bundle and round goes through every link rate in turn (a phase per
    # rate; the first --warmup inputs of each phase are not counted), each input through every
    # strategy; the Python peer likewise.
    cells = {}  # (bundle, rate, strategy) -> {"rows": [...], "failures": n, "discarded": [...], "choices": {}}
    prog = Progress(args.rounds * len(bundles) * (2 if peers else 1) * len(args.rates))
    raw = os.path.join(args.out, "raw")
    os.makedirs(raw, exist_ok=True)
    rates = args.rates

    def cell(key, **extra):
        return cells.setdefault(key, {"rows": [], "failures": 0, "discarded": [], "choices": {}, **extra})

    for rnd in range(1, args.rounds + 1):
        for name, b in bundles.items():
            n = b["requests"]
            per = args.warmup + n
            tag = f"{device.key}-{name}-r{rnd}"

            def on_phase(k, what):
                if emu and what == "libsplit":
                    emu.set_rate(rates[k])
                if what == "peer" and peers[name]:
                    peers[name].set_rate(rates[k])
                prog.step(f"round {rnd}/{args.rounds}, {name}, {rate_name(rates[k])} Mbit/s: "
                          + (f"{len(b['strategies'])} strategies x {n} requests" if what == "libsplit"
                             else f"the Python peer ({b['default_split']}) x {n} requests"))

            cmd = [bin_tool("split-client"), "--server", target, "--bundle", b["dir"],
                   "--split", ",".join(b["strategies"]), "--input", b["input"], "--warmup", "0",
                   "--limit", str(per * len(rates)), "--pause-every", str(per), "--threads", str(device.threads),
                   "--shuffle", "--gap-ms", str(args.gap_ms if device.cgroup else 0),
                   "--top-k", "1", "--deadline-ms", "60000", "--quiet", "--log-level", "error",
                   "--json", os.path.join(raw, f"{tag}.json"), "--samples", os.path.join(raw, f"{tag}.tsv")]
            if b["labels"]:
                cmd += ["--labels", b["labels"]]
            with power.Sampler(power_src) as s:
                rc = phased(cmd, device, len(rates), lambda k: on_phase(k, "libsplit"),
                            os.path.join(raw, f"{tag}.log"), 3600)
            if rc not in (0, 3):
                die(f"split-client failed (exit {rc}; see {os.path.relpath(os.path.join(raw, tag + '.log'), ROOT)})")
            res = s.result()
            for r in read_samples(os.path.join(raw, f"{tag}.tsv"), s):
                k, j = divmod(r["index"], per)
                if j < args.warmup or k >= len(rates):
                    continue
                c = cell((name, rates[k], r["run"]))
                if res["discard"]:
                    continue
                if r["status"] != "ok":
                    c["failures"] += 1
                    continue
                c["rows"].append(r)
                if r["run"] == "dynamic":
                    c["choices"][r["strategy"]] = c["choices"].get(r["strategy"], 0) + 1
            if res["discard"]:
                for rate in rates:
                    for strat in b["strategies"]:
                        cell((name, rate, strat))["discarded"].append({"round": rnd, "why": res["discard"]})
            if name not in peers:
                continue
            pj = os.path.join(raw, f"{tag}-peer.json")
            cmd = [PY, "benchmarks/pickle_baseline.py", "--bundle", b["dir"], "--split", b["default_split"],
                   "--connect", peer_address(args, peers[name], name), "--requests", str(per * len(rates)),
                   "--warmup", "0", "--pause-every", str(per), "--threads", str(device.threads), "--json", pj]
            with power.Sampler(power_src) as s:
                rc = phased(cmd, device, len(rates), lambda k: on_phase(k, "peer"),
                            os.path.join(raw, f"{tag}-peer.log"), 3600)
            if rc != 0:
                die(f"the Python peer failed (exit {rc}; see {os.path.relpath(pj[:-5] + '.log', ROOT)})")
            res = s.result()
            pr = json.load(open(pj))
            for i, t in enumerate(pr["total_ms_samples"]):
                k, j = divmod(i, per)
                if j < args.warmup or k >= len(rates):
                    continue
                c = cell((name, rates[k], "peer"), peer=True)
                if res["discard"]:
                    c["discarded"].append({"round": rnd, "why": res["discard"]})
                    continue
                c["rows"].append({"total_ms": t, "request_bytes": pr["wire_bytes"], "energy_j": None})
    return summarize_cells(cells, bundles)


def peer_address(args, emu, name):
    if emu:
        return f"127.0.0.1:{emu.port}"
    host, _, port = args.peer_server.rpartition(":")
    # --peer-server HOST:PORT serves the first bundle; the next ones on the following ports
    return f"{host}:{int(port) + list(args.bundles).index(name)}"


STAGES = ("head", "encode", "network", "queue", "tail", "total")


def summarize_cells(cells, bundles):
    out = []
    for (name, rate, strat), c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        rows = c["rows"]
        cell = {"bundle": name, "rate_mbit": rate, "strategy": strat, "requests": len(rows), "failures": c["failures"],
                "discarded": c["discarded"]}
        if c.get("peer"):
            cell["latency_ms"] = {"total": pcts([r["total_ms"] for r in rows])}
            cell["wire_bytes"] = rows[0]["request_bytes"] if rows else None
        else:
            cell["latency_ms"] = {s: pcts([r[f"{s}_ms"] for r in rows]) for s in STAGES}
            cell["wire_bytes"] = statistics.fmean(r["request_bytes"] for r in rows) if rows else None
            cell["response_bytes"] = statistics.fmean(r["response_bytes"] for r in rows) if rows else None
            busy = sum(r["total_ms"] for r in rows) / 1000
            cell["throughput_rps"] = len(rows) / busy if busy else None
            if bundles[name]["labels"] and rows:
                correct = sum(r["predicted"] == r["label"] for r in rows)
                cell["accuracy"] = 100.0 * correct / len(rows)
                cell["correct"] = correct
            if c["choices"]:
                cell["dynamic_choices"] = c["choices"]
        energies = [r["energy_j"] for r in rows if r.get("energy_j") is not None]
        cell["energy_j_per_inference"] = statistics.fmean(energies) if energies and len(energies) == len(rows) else None
        out.append(cell)
    by_key = {(c["bundle"], c["rate_mbit"], c["strategy"]): c for c in out}
    for (name, rate, strat), c in cells.items():
        if strat != "dynamic" or not c["rows"] or c.get("peer"):
            continue
        fixed = [(by_key[k]["latency_ms"]["total"]["p50"], k[2]) for k in by_key
                 if k[0] == name and k[1] == rate and k[2] not in ("dynamic", "peer") and by_key[k]["requests"]]
        if fixed:
            best = min(fixed)[1]
            by_key[(name, rate, "dynamic")]["vs_best_fixed"] = ratio_interval(
                [r["total_ms"] for r in c["rows"]], [r["total_ms"] for r in cells[(name, rate, best)]["rows"]], best)
    return out


def ratio_interval(dynamic_ms, fixed_ms, fixed_name, resamples=2000, seed=1):
    """dynamic's p50 over a fixed strategy's p50, with a 95% bootstrap interval (each side's
    samples resampled on their own; seeded). Under a CPU quota a pass either fits in what is left
    of the quota's slice or waits for the next one, so latencies are bimodal and a p50 of 100
    requests moves by 10-20% from run to run: the interval says how far a ratio can be trusted."""
    rng = random.Random(seed)
    p50 = lambda v: pct(v, 0.5)  # noqa: E731
    ratios = sorted(p50(rng.choices(dynamic_ms, k=len(dynamic_ms))) / p50(rng.choices(fixed_ms, k=len(fixed_ms)))
                    for _ in range(resamples))
    return {"strategy": fixed_name, "ratio_p50": p50(dynamic_ms) / p50(fixed_ms),
            "ci95": [ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]], "resamples": resamples}


def accuracy_pass(args, h, bundles, models):
    labelled = {n: b for n, b in bundles.items() if b["labels"]}
    if not labelled:
        return []
    log(f"== accuracy: every fixed strategy on {args.accuracy_requests} labelled test images")
    if args.server:
        address = args.server
    else:
        _, port = h.server("server-accuracy", models, 1, args.edge_threads)
        address = f"127.0.0.1:{port}"
    out = []
    for name, b in labelled.items():
        fixed = [s for s in b["strategies"] if s != "dynamic"]
        j = os.path.join(args.out, "raw", f"accuracy-{name}.json")
        run([bin_tool("split-client"), "--server", address, "--bundle", b["dir"], "--split",
             ",".join(fixed), "--input", b["input"], "--labels", b["labels"], "--limit", str(args.accuracy_requests),
             "--top-k", "1", "--quiet", "--log-level", "error", "--json", j],
            os.path.join(args.out, "raw", f"accuracy-{name}.log"), 3600)
        for r in json.load(open(j)):
            out.append({"bundle": name, "strategy": r["strategy"], "requests": r["requests"],
                        "failures": r["failures"], "accuracy": r["accuracy"],
                        "wire_bytes": r["wire_bytes_per_request"], "codec": r["codec"]})
    return out


def overhead(args, bundles):
    log("== per-request overhead on loopback: libsplit (bench-overhead) against the Python peer; threads free to "
        "use both cores (shared), everything on one core (taskset -c 0), and both cores with libsplit's client and "
        f"server busy-polling for up to {BUSY_POLL_US} us and tails inline (busy-poll)")
    out = []
    for setting in args.overhead_settings:
        pin = ["taskset", "-c", "0"] if setting == "one-core" else []
        for name, b in bundles.items():
            n = args.overhead_image if b["image"] else args.overhead_fmnist
            w = 5 if b["image"] else 50
            lj = os.path.join(args.out, "raw", f"overhead-{setting}-{name}-libsplit.json")
            pj = os.path.join(args.out, "raw", f"overhead-{setting}-{name}-peer.json")
            busy = (["--busy-poll-us", str(BUSY_POLL_US), "--inline-tail-max-us", str(BUSY_POLL_US)]
                    if setting == "busy-poll" else [])
            run(pin + [bin_bench("bench-overhead"), "--bundle", b["dir"], "--split", b["default_split"], "--requests",
                       str(n), "--warmup", str(w), "--json", lj] + busy, lj[:-5] + ".log", 3600)
            run(pin + [PY, "benchmarks/pickle_baseline.py", "--bundle", b["dir"], "--split", b["default_split"],
                       "--requests", str(n), "--warmup", str(w), "--json", pj], pj[:-5] + ".log", 3600)
            lo, po = json.load(open(lj)), json.load(open(pj))
            row = {"bundle": name, "split": b["default_split"], "setting": setting, "requests": n,
                   "libsplit_us": lo["us"]["overhead"], "peer_us": po["us"]["overhead"],
                   "libsplit_total_ms_p50": lo["us"]["total"]["p50"] / 1000,
                   "peer_total_ms_p50": po["us"]["total"]["p50"] / 1000,
                   "libsplit_bytes": lo.get("request_bytes"), "peer_bytes": po["wire_bytes"]}
            row["ratio_p50"] = row["peer_us"]["p50"] / row["libsplit_us"]["p50"]
            log(f"   [{setting}] {name}: overhead p50 libsplit {row['libsplit_us']['p50']:.0f} us, peer "
                f"{row['peer_us']['p50']:.0f} us ({row['ratio_p50']:.1f}x), {n} requests each")
            out.append(row)
    return out


def throughput(args, bundles):
    names = [n for n in args.throughput_bundles if n in bundles]
    if not names:
        return []
    log(f"== server throughput: split-server against the Python peer, 8 closed-loop clients, "
        f"{args.throughput_rounds} alternating rounds of {args.throughput_seconds} s")
    out = []
    for name in names:
        b = bundles[name]
        rounds = []
        for r in range(1, args.throughput_rounds + 1):
            lj = os.path.join(args.out, "raw", f"throughput-{name}-libsplit-{r}.json")
            pj = os.path.join(args.out, "raw", f"throughput-{name}-peer-{r}.json")
            run([bin_bench("bench-throughput"), "--bundle", b["dir"], "--split", b["default_split"], "--clients", "8",
                 "--workers", "2", "--torch-threads", "1", "--batch", "2", "--modes", "daemon-b1", "--seconds",
                 str(args.throughput_seconds), "--warmup-s", "2", "--rounds", "1", "--json", lj], lj[:-5] + ".log", 3600)
            run([PY, "benchmarks/pickle_baseline.py", "--bundle", b["dir"], "--split", b["default_split"],
                 "--throughput", "--clients", "8", "--seconds", str(args.throughput_seconds), "--warmup-s", "2",
                 "--threads", "1", "--json", pj], pj[:-5] + ".log", 3600)
            lr = json.load(open(lj))["modes"]["daemon-b1"]
            pr = json.load(open(pj))
            rounds.append({"libsplit_rps": lr["rps_median"], "libsplit_p99_ms": lr["p99_ms_median"],
                           "peer_rps": pr["rps"], "peer_p99_ms": pr["round_trip_ms"]["p99"],
                           "ratio": lr["rps_median"] / pr["rps"] if pr["rps"] else None})
            log(f"   {name} round {r}: libsplit {lr['rps_median']:.1f} req/s, peer {pr['rps']:.1f} req/s")
        ratios = [x["ratio"] for x in rounds if x["ratio"]]
        out.append({"bundle": name, "split": b["default_split"], "seconds": args.throughput_seconds, "rounds": rounds,
                    "ratio_median": statistics.median(ratios) if ratios else None,
                    "ratio_min": min(ratios) if ratios else None})
    return out


def poisson(args, h, bundles, models, tput):
    log(f"== Poisson arrivals: {args.poisson_clients} clients, split-server 2 workers x 1 thread, "
        f"{args.poisson_seconds} s per step")
    _, port = h.server("server-poisson", models, 2, 1)
    out = []
    for name, b in bundles.items():
        bound = args.p99_ms.get(name, 100.0)
        known = next((t for t in tput if t["bundle"] == name), None)
        if known:
            capacity = statistics.median(r["libsplit_rps"] for r in known["rounds"])
        else:  # from a short closed-loop probe: its rate at 1 client is a floor of the capacity
            probe = os.path.join(args.out, "raw", f"poisson-{name}-probe.json")
            run([bin_bench("bench-throughput"), "--bundle", b["dir"], "--split", b["default_split"], "--clients", "4",
                 "--workers", "2", "--torch-threads", "1", "--batch", "2", "--modes", "daemon-b1", "--seconds", "3",
                 "--warmup-s", "1", "--rounds", "1", "--json", probe], probe[:-5] + ".log", 600)
            capacity = json.load(open(probe))["modes"]["daemon-b1"]["rps_median"]
        rate = max(1.0, 0.2 * capacity)
        steps, best = [], None
        going_down = True  # halve the rate while the bound is missed from the start, then step up
        for k in range(args.poisson_max_steps):
            j = os.path.join(args.out, "raw", f"poisson-{name}-{k}.json")
            run([bin_bench("bench-load"), "--server", f"127.0.0.1:{port}", "--bundle", b["dir"], "--input", b["input"],
                 "--split", b["default_split"], "--rate", f"{rate:.3f}", "--clients", str(args.poisson_clients),
                 "--duration-s", str(args.poisson_seconds), "--warmup-s", "1", "--seed", str(k + 1),
                 "--max-in-flight", "64", "--json", j], j[:-5] + ".log", 600)
            r = json.load(open(j))
            lost = r["rejected"] + r["skipped"] + r["unanswered"]
            met = r["answered"] > 0 and lost == 0 and r["latency_ms"]["p99"] <= bound
            steps.append({"rate_hz": rate, "achieved_hz": r["achieved_hz"], "answered": r["answered"], "lost": lost,
                          "p50_ms": r["latency_ms"]["p50"], "p90_ms": r["latency_ms"]["p90"],
                          "p99_ms": r["latency_ms"]["p99"], "queue_p99_ms": r["queue_ms"]["p99"], "met": met})
            log(f"   {name}: {rate:.1f} req/s offered, {r['achieved_hz']:.1f} arrived, p99 {r['latency_ms']['p99']:.1f} ms "
                f"(bound {bound:g}), {lost} lost: {'met' if met else 'missed'}")
            if not met and going_down and best is None:
                rate /= 2
                continue
            if not met:
                break
            going_down = False
            best = steps[-1]
            rate *= args.poisson_step
        out.append({"bundle": name, "split": b["default_split"], "p99_bound_ms": bound, "clients": args.poisson_clients,
                    "capacity_estimate_rps": capacity, "steps": steps, "max_rate_hz": best["rate_hz"] if best else None,
                    "at_max": best, "limited_by_steps": bool(steps and steps[-1]["met"])})
    return out


# ---------------------------------------------------------------- report

def write_csvs(args, res):
    with open(os.path.join(args.out, "single_stream.csv"), "w", newline="") as f:
        w = csv.writer(f)
        head = ["device", "bundle", "rate_mbit", "rtt_ms", "strategy", "requests", "failures", "discarded_runs"]
        for s in STAGES:
            head += [f"{s}_p50_ms", f"{s}_p90_ms", f"{s}_p99_ms", f"{s}_max_ms"]
        head += ["wire_bytes", "response_bytes", "accuracy", "throughput_rps", "energy_j_per_inference",
                 "dynamic_choices"]
        w.writerow(head)
        for c in res["single_stream"]:
            row = [res["environment"]["device"], c["bundle"], c["rate_mbit"], args.rtt_ms, c["strategy"],
                   c["requests"], c["failures"], len(c["discarded"])]
            for s in STAGES:
                p = c["latency_ms"].get(s, {})
                row += [p.get("p50"), p.get("p90"), p.get("p99"), p.get("max")]
            row += [c.get("wire_bytes"), c.get("response_bytes"), c.get("accuracy"), c.get("throughput_rps"),
                    c.get("energy_j_per_inference"),
                    " ".join(f"{k}={v}" for k, v in sorted(c.get("dynamic_choices", {}).items()))]
            w.writerow(row)
    with open(os.path.join(args.out, "peer.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "bundle", "split", "requests_or_seconds", "libsplit_p50", "peer_p50", "ratio"])
        for o in res["overhead"]:
            w.writerow([f"overhead_us_{o['setting']}", o["bundle"], o["split"], o["requests"], o["libsplit_us"]["p50"],
                        o["peer_us"]["p50"], o["ratio_p50"]])
        for t in res["throughput"]:
            for r in t["rounds"]:
                w.writerow(["throughput_rps", t["bundle"], t["split"], t["seconds"], r["libsplit_rps"], r["peer_rps"],
                            r["ratio"]])
    with open(os.path.join(args.out, "poisson.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bundle", "split", "clients", "p99_bound_ms", "offered_hz", "achieved_hz", "answered", "lost",
                    "p50_ms", "p90_ms", "p99_ms", "met"])
        for p in res["poisson"]:
            for s in p["steps"]:
                w.writerow([p["bundle"], p["split"], p["clients"], p["p99_bound_ms"], s["rate_hz"], s["achieved_hz"],
                            s["answered"], s["lost"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["met"]])


def cell_map(res):
    return {(c["bundle"], c["rate_mbit"], c["strategy"]): c for c in res["single_stream"]}


def weak_device_bar(res, bundle="resnet50"):
    """Per rate: the best split-or-dynamic against local and against the best offload (p50)."""
    cm = cell_map(res)
    rows = []
    for rate in res["config"]["rates"]:
        def p50(s):
            c = cm.get((bundle, rate, s))
            return c["latency_ms"]["total"]["p50"] if c and c["requests"] else None
        strategies = sorted({k[2] for k in cm if k[0] == bundle})
        splits = [s for s in strategies if s not in ("local", "offload", "offload-png", "peer") and not s.startswith("pruned")]
        cand = [(p50(s), s) for s in splits if p50(s) is not None]
        off = [(p50(s), s) for s in ("offload", "offload-png") if p50(s) is not None]
        loc = p50("local")
        if not cand or not off or loc is None:
            continue
        best, best_off = min(cand), min(off)
        rows.append({"rate_mbit": rate, "best": best[1], "best_ms": best[0], "local_ms": loc, "offload": best_off[1],
                     "offload_ms": best_off[0], "vs_local_pct": 100 * (1 - best[0] / loc),
                     "vs_offload_pct": 100 * (1 - best[0] / best_off[0]),
                     "beats_both": best[0] < loc and best[0] < best_off[0]})
    return rows


def latency_plot(plt, pdir, name, strategies, cm, res, bundles):
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in strategies:
        xs = [r for r in res["config"]["rates"] if (name, r, s) in cm and cm[(name, r, s)]["requests"]]
        ys = [cm[(name, r, s)]["latency_ms"]["total"]["p90"] for r in xs]
        style = "-" if s in ("dynamic", "peer") else "--" if s in ("local", "offload", "offload-png") or \
            s.startswith("pruned") else ":"
        ax.plot(xs, ys, style, marker="o", label=s, linewidth=2.2 if s == "dynamic" else 1.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("link rate (Mbit/s, both directions)")
    ax.set_ylabel("end-to-end latency p90 (ms)")
    ax.set_title(f"{bundles[name]['name']}: single stream, {res['environment']['device']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(pdir, f"latency-{name}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(args, res, bundles):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("suite: python3-matplotlib is missing: no plots (tools/install-deps.sh installs it)")
        return []
    pdir = os.path.join(args.out, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = []
    cm = cell_map(res)
    for name in bundles:
        strategies = sorted({k[2] for k in cm if k[0] == name})
        if not strategies:
            continue
        # Latency against link rate: only with emulated rates to put on the axis.
        if len(res["config"]["rates"]) >= 2 and 0 not in res["config"]["rates"]:
            made.append(latency_plot(plt, pdir, name, strategies, cm, res, bundles))
        # Stage breakdown (p50 of each stage) at the rate nearest 10 Mbit/s.
        rate = min(res["config"]["rates"], key=lambda r: abs(r - 10))
        ss = [s for s in strategies if s != "peer" and (name, rate, s) in cm and cm[(name, rate, s)]["requests"]]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        bottom = [0.0] * len(ss)
        for stage in ("head", "encode", "network", "queue", "tail"):
            vals = [cm[(name, rate, s)]["latency_ms"][stage]["p50"] or 0 for s in ss]
            ax.bar(ss, vals, bottom=bottom, label=stage)
            bottom = [a + b for a, b in zip(bottom, vals)]
        ax.set_ylabel("ms (p50 of each stage)")
        ax.set_title(f"{bundles[name]['name']}: stages at {rate_name(rate)} Mbit/s", fontsize=9)
        ax.legend(fontsize=8)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", fontsize=8)
        fig.tight_layout()
        path = os.path.join(pdir, f"stages-{name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    if res["accuracy"]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for a in res["accuracy"]:
            x = max(a["wire_bytes"], 1)
            ax.scatter([x], [a["accuracy"]])
            ax.annotate(a["strategy"], (x, a["accuracy"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("request bytes on the wire (local: 1 = none)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"Fashion-MNIST: bytes against accuracy ({res['accuracy'][0]['requests']} test images)", fontsize=9)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path = os.path.join(pdir, "bytes-accuracy.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def report(args, res, bundles, plot_paths, image_prefix):
    env, cfg = res["environment"], res["config"]
    L = []
    L.append(f"Conditions: {env['cpu']}, {env['cores']} cores, governor {env['governor']}, {env['os']}, kernel "
             f"{env['kernel']}, LibTorch {env['libtorch']} ({env['blas']}), commit {env['commit']}"
             f"{' (uncommitted changes)' if env['dirty'] else ''}, {env['date']}. Device: {env['device']}. Edge: "
             f"{env['edge']}. Link: {env['link']}. Power: {env['power']}. Single stream: {cfg['rounds']} rounds, "
             f"{cfg['warmup']} warm-up requests per strategy and process excluded; the sweep took "
             f"{res['seconds'] / 60:.1f} min in all.")
    L.append("")
    cm = cell_map(res)
    for name, b in bundles.items():
        strategies = [s for s in b["strategies"] + ["peer"] if any(k[0] == name and k[2] == s for k in cm)]
        if not strategies:
            continue
        n = max(cm[(name, r, s)]["requests"] for r in cfg["rates"] for s in strategies if (name, r, s) in cm)
        L.append(f"**{b['name']}** ({'trained' if b['weights'] != 'random' else 'random weights: latency only'}; "
                 f"end-to-end p90 / p50 in ms, up to {n} requests per cell; `peer` = the Python peer on "
                 f"`{b['default_split']}`):")
        L.append("")
        L.append("| Mbit/s | " + " | ".join(strategies) + " | best fixed (p90) | dynamic / best fixed (p50; 95% "
                 "interval) | dynamic's choices |")
        L.append("|---:|" + "---:|" * len(strategies) + "---|---:|---|")
        for rate in cfg["rates"]:
            cells = []
            for s in strategies:
                c = cm.get((name, rate, s))
                if not c or not c["requests"]:
                    cells.append("-")
                    continue
                t = c["latency_ms"]["total"]
                fail = f" ({c['failures']} failed)" if c["failures"] else ""
                cells.append(f"{t['p90']:.1f} / {t['p50']:.1f}{fail}")
            fixed = [(cm[(name, rate, s)]["latency_ms"]["total"]["p90"], s) for s in strategies
                     if s not in ("dynamic", "peer") and (name, rate, s) in cm and cm[(name, rate, s)]["requests"]]
            best = min(fixed) if fixed else None
            dcell = cm.get((name, rate, "dynamic"))
            dyn = (dcell or {}).get("dynamic_choices", {})
            choices = ", ".join(f"{k} {v}" for k, v in sorted(dyn.items(), key=lambda kv: -kv[1]))
            # every fixed strategy, the pruned local models included (dynamic weighs them too)
            best50 = min((cm[(name, rate, s)]["latency_ms"]["total"]["p50"] for s in strategies
                          if s not in ("dynamic", "peer") and (name, rate, s) in cm
                          and cm[(name, rate, s)]["requests"]), default=None)
            ratio = (f"{dcell['latency_ms']['total']['p50'] / best50:.2f}"
                     if dcell and dcell["requests"] and best50 else "-")
            ci = (dcell or {}).get("vs_best_fixed", {}).get("ci95")
            if ci and ratio != "-":
                ratio += f" ({ci[0]:.2f}-{ci[1]:.2f})"
            L.append(f"| {rate_name(rate)} | " + " | ".join(cells) + f" | {best[1] + ' ' + fmt(best[0]) if best else '-'} | "
                     f"{ratio} | {choices} |")
        L.append("")
        rate = min(cfg["rates"], key=lambda r: abs(r - 10))
        L.append(f"Stages at {rate_name(rate)} Mbit/s (p50 ms; network = round trip minus the server's queue and tail: the "
                 f"send and the reply together, which one clock cannot separate; bytes = request frame):")
        L.append("")
        L.append("| strategy | head | encode | network | queue | tail | total | request B | reply B |"
                 + (" top-1 % |" if b["labels"] else "") + " energy J |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if b["labels"] else "") + "---:|")
        for s in strategies:
            c = cm.get((name, rate, s))
            if not c or not c["requests"] or s == "peer":
                continue
            lm = c["latency_ms"]
            acc = f" {fmt(c.get('accuracy'))} |" if b["labels"] else ""
            e = c.get("energy_j_per_inference")
            L.append(f"| {s} | " + " | ".join(fmt(lm[st]["p50"], 2) for st in STAGES) +
                     f" | {fmt(c['wire_bytes'], 0)} | {fmt(c.get('response_bytes'), 0)} |{acc} "
                     f"{'absent' if e is None else f'{e:.4f}'} |")
        L.append("")
    bar = weak_device_bar(res)
    if bar:
        L.append("**Weaker device, ResNet-50** (p50; best of the splits and dynamic against the local model and "
                 f"against the better of raw and PNG offload; BottleFit reported up to {BOTTLEFIT_PAPER['local']:g}% "
                 f"lower latency than local and {BOTTLEFIT_PAPER['offload']:g}% lower than offloading):")
        L.append("")
        L.append("| Mbit/s | best split / dynamic | ms | local ms | reduction vs local | best offload | ms | "
                 "reduction vs offload | beats both |")
        L.append("|---:|---|---:|---:|---:|---|---:|---:|---|")
        for r in bar:
            L.append(f"| {rate_name(r['rate_mbit'])} | {r['best']} | {r['best_ms']:.1f} | {r['local_ms']:.1f} | "
                     f"{r['vs_local_pct']:.0f}% | {r['offload']} | {r['offload_ms']:.1f} | {r['vs_offload_pct']:.0f}% | "
                     f"{'yes' if r['beats_both'] else 'no'} |")
        L.append("")
    peer_rows = []
    for name, b in bundles.items():
        for rate in cfg["rates"]:
            a, p = cm.get((name, rate, b["default_split"])), cm.get((name, rate, "peer"))
            if a and p and a["requests"] and p["requests"]:
                peer_rows.append((b, rate, a, p))
    if peer_rows:
        L.append("**The same split through the same link: libsplit against the Python peer** (single stream on the "
                 "weaker device; end-to-end ms):")
        L.append("")
        L.append("| bundle (split) | Mbit/s | requests | libsplit p50 / p90 | peer p50 / p90 | peer / libsplit (p50) | "
                 "request bytes libsplit / peer |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for b, rate, a, p in peer_rows:
            at, pt = a["latency_ms"]["total"], p["latency_ms"]["total"]
            L.append(f"| {b['name']} (`{b['default_split']}`) | {rate_name(rate)} | {a['requests']} / {p['requests']} | "
                     f"{at['p50']:.1f} / {at['p90']:.1f} | {pt['p50']:.1f} / {pt['p90']:.1f} | {pt['p50'] / at['p50']:.2f}x | "
                     f"{fmt(a['wire_bytes'], 0)} / {fmt(p['wire_bytes'], 0)} |")
        L.append("")
    if res["accuracy"]:
        L.append(f"**Accuracy against bytes** (Fashion-MNIST, {res['accuracy'][0]['requests']} test images through "
                 "split-server on loopback):")
        L.append("")
        L.append("| strategy | codec | request B | top-1 % | failures |")
        L.append("|---|---|---:|---:|---:|")
        for a in sorted(res["accuracy"], key=lambda a: a["wire_bytes"]):
            L.append(f"| {a['strategy']} | {a['codec'] or '-'} | {a['wire_bytes']:.0f} | {a['accuracy']:.2f} | "
                     f"{a['failures']} |")
        L.append("")
    if res["overhead"]:
        L.append("**Per-request overhead against the Python peer** (total - head - tail, single stream on loopback, "
                 "no CPU quota; shared: threads free to use both cores, so each hand-off between threads wakes an "
                 "idle core; one core: everything under `taskset -c 0`; busy-poll: both cores, libsplit's client and "
                 f"server polling without sleeping for up to {BUSY_POLL_US // 1000} ms while they wait (`--busy-poll-us`) and "
                 f"the server running tails of up to {BUSY_POLL_US // 1000} ms on its I/O thread (`--inline-tail-max-us`), "
                 "the peer as in shared; µs):")
        L.append("")
        L.append("| bundle (split) | setting | requests | libsplit p50 / p90 / p99 | peer p50 / p90 / p99 | "
                 "peer / libsplit (p50) | request bytes libsplit / peer |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for o in res["overhead"]:
            a, p = o["libsplit_us"], o["peer_us"]
            L.append(f"| {o['bundle']} (`{o['split']}`) | {o['setting']} | {o['requests']} | {a['p50']:.0f} / {a['p90']:.0f} / "
                     f"{a['p99']:.0f} | {p['p50']:.0f} / {p['p90']:.0f} / {p['p99']:.0f} | {o['ratio_p50']:.1f}x | "
                     f"{o['libsplit_bytes']} / {o['peer_bytes']} |")
        L.append("")
    if res["throughput"]:
        L.append("**Server throughput against the Python peer** (8 closed-loop clients on loopback; split-server 2 "
                 "workers x 1 thread, the peer a thread per connection and 1 thread per forward; alternating rounds):")
        L.append("")
        L.append("| bundle (split) | round | libsplit req/s | p99 ms | peer req/s | p99 ms | ratio |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for t in res["throughput"]:
            for i, r in enumerate(t["rounds"], 1):
                L.append(f"| {t['bundle']} (`{t['split']}`) | {i} | {r['libsplit_rps']:.1f} | {r['libsplit_p99_ms']:.1f} | "
                         f"{r['peer_rps']:.1f} | {r['peer_p99_ms']:.1f} | {fmt(r['ratio'], 2)} |")
            L.append(f"| {t['bundle']} | median | | | | | **{fmt(t['ratio_median'], 2)}** (min {fmt(t['ratio_min'], 2)}) |")
        L.append("")
    if res["poisson"]:
        L.append(f"**Poisson arrivals** (MLPerf server scenario: {res['poisson'][0]['clients']} clients forming one "
                 "Poisson process, the default split's bottleneck precomputed, latency from each request's scheduled "
                 "arrival to its answer; split-server 2 workers x 1 thread on loopback):")
        L.append("")
        L.append("| bundle (split) | p99 bound ms | highest rate meeting it (req/s) | p50 / p99 there ms | steps | "
                 "next step |")
        L.append("|---|---:|---:|---:|---:|---|")
        for p in res["poisson"]:
            at = p["at_max"]
            nxt = p["steps"][-1] if p["steps"] and not p["steps"][-1]["met"] else None
            nxt_s = (f"{nxt['rate_hz']:.1f} req/s: p99 {nxt['p99_ms']:.1f} ms, {nxt['lost']} lost" if nxt
                     else "not reached (more steps needed)")
            L.append(f"| {p['bundle']} (`{p['split']}`) | {p['p99_bound_ms']:g} | {fmt(p['max_rate_hz'])} | "
                     f"{(fmt(at['p50_ms']) + ' / ' + fmt(at['p99_ms'])) if at else '-'} | {len(p['steps'])} | {nxt_s} |")
        L.append("")
    for path in plot_paths:
        L.append(f"![{os.path.basename(path)}]({image_prefix}{os.path.basename(path)})")
    return "\n".join(L) + "\n"


def update_readme(args, text, plot_paths):
    dest = os.path.join(ROOT, "benchmarks/results")
    os.makedirs(dest, exist_ok=True)
    for p in plot_paths:
        shutil.copy(p, dest)
    for f in ("results.json", "single_stream.csv", "peer.csv", "poisson.csv", "report.md"):
        shutil.copy(os.path.join(args.out, f), dest)
    readme = os.path.join(ROOT, "README.md")
    src = open(readme).read()
    begin, end = "<!-- suite:begin -->", "<!-- suite:end -->"
    if begin not in src or end not in src:
        die(f"README.md has no {begin} ... {end} section to rewrite")
    a, b = src.index(begin) + len(begin), src.index(end)
    open(readme, "w").write(src[:a] + "\n" + text + src[b:])
    log(f"== README.md results section and benchmarks/results/ rewritten")


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default",
                    help="the sizes below unless given (default: the full sweep; quick: a few minutes)")
    ap.add_argument("--bundles", help="comma-separated, of " + ", ".join(BUNDLES))
    ap.add_argument("--rates", help="link rates in Mbit/s, comma-separated")
    ap.add_argument("--rtt-ms", type=float, default=10.0, help="link round trip (default 10)")
    ap.add_argument("--device-quota", default="0.25",
                    help="the device's CPU quota as a fraction of one core, or 'none' (default 0.25)")
    ap.add_argument("--device-threads", type=int, default=1, help="LibTorch threads on the device (default 1)")
    ap.add_argument("--edge-threads", type=int, default=2, help="LibTorch threads per forward on the edge (default 2)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--gap-ms", type=int, default=10,
                    help="a confined device idles this long before each request (not counted), so that every "
                    "request starts with its CPU quota's budget refilled and the edge idle (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up requests per strategy and client process")
    ap.add_argument("--requests-fmnist", type=int, help="single stream: requests per strategy, link rate and round")
    ap.add_argument("--requests-image", type=int, help="the same for the 224x224 bundles")
    ap.add_argument("--accuracy-requests", type=int)
    ap.add_argument("--overhead-fmnist", type=int)
    ap.add_argument("--overhead-image", type=int)
    ap.add_argument("--overhead-settings", default="shared,one-core,busy-poll",
                    help="overhead: shared (threads on both cores), one-core (taskset -c 0), busy-poll (both cores, "
                         "libsplit's client and server busy-polling); default all three")
    ap.add_argument("--throughput-seconds", type=float)
    ap.add_argument("--throughput-rounds", type=int)
    ap.add_argument("--throughput-bundles")
    ap.add_argument("--poisson-clients", type=int, default=8)
    ap.add_argument("--poisson-seconds", type=float)
    ap.add_argument("--poisson-max-steps", type=int)
    ap.add_argument("--poisson-step", type=float, default=1.25, help="rate factor between Poisson steps (default 1.25)")
    ap.add_argument("--p99-ms", default="",
                    help="Poisson p99 bounds, e.g. fmnist=10,resnet50=400 (defaults: " +
                    ", ".join(f"{k}={v:g}" for k, v in P99_MS.items()) + ")")
    ap.add_argument("--scenarios", default="single,accuracy,overhead,throughput,poisson",
                    help="which to run (default: all of single,accuracy,overhead,throughput,poisson)")
    ap.add_argument("--strategies", help="single stream: only these (comma-separated; default: every strategy "
                    "of each bundle: local, its pruned models, offload, offload-png, every split, dynamic)")
    ap.add_argument("--server", metavar="HOST:PORT",
                    help="the edge runs elsewhere (split-server --models with these bundles): the device runs here "
                    "over the real network, no emulated link; scenarios single and accuracy only")
    ap.add_argument("--peer-server", metavar="HOST:PORT",
                    help="with --server: the Python peer's server there (pickle_baseline.py --serve-only, one per "
                    "bundle on consecutive ports, in --bundles order); without it the peer is left out")
    ap.add_argument("--no-peer", action="store_true", help="leave the Python peer out of the single-stream sweep")
    ap.add_argument("--no-build", action="store_true", help="do not run tools/build.sh first")
    ap.add_argument("--out", default="build/bench/suite", help="output directory (default build/bench/suite)")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: write the CSV files, report and plots (and with --readme the README "
                    "section) again from --out's results.json")
    ap.add_argument("--readme", action="store_true",
                    help="copy the results to benchmarks/results/ and rewrite README.md's results section")
    args = ap.parse_args()
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.bundles = [b for b in args.bundles.split(",") if b]
    for b in args.bundles:
        if b not in BUNDLES:
            ap.error(f"--bundles: unknown bundle '{b}' (choose from {', '.join(BUNDLES)})")
    try:
        args.rates = [float(r) if "." in r else int(r) for r in args.rates.split(",") if r]
    except ValueError:
        ap.error(f"--rates: '{args.rates}' is not a comma-separated list of numbers")
    if not args.server and (not args.rates or any(r <= 0 for r in args.rates)):
        ap.error("--rates: give positive rates in Mbit/s")
    args.throughput_bundles = [b for b in args.throughput_bundles.split(",") if b]
    args.strategies = [s for s in (args.strategies or "").split(",") if s]
    args.overhead_settings = [s for s in args.overhead_settings.split(",") if s]
    if set(args.overhead_settings) - {"shared", "one-core", "busy-poll"}:
        ap.error("--overhead-settings: shared, one-core and/or busy-poll")
    if args.server:
        if args.scenarios == ap.get_default("scenarios"):
            args.scenarios = "single,accuracy"
        args.rates = [0]
    elif args.peer_server:
        ap.error("--peer-server goes with --server")
    args.scenarios = set(s for s in args.scenarios.split(",") if s)
    if args.server and args.scenarios - {"single", "accuracy"}:
        ap.error("--server: only the single and accuracy scenarios run against a remote edge")
    unknown = args.scenarios - {"single", "accuracy", "overhead", "throughput", "poisson"}
    if unknown:
        ap.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    bounds = dict(P99_MS)
    for item in filter(None, args.p99_ms.split(",")):
        k, _, v = item.partition("=")
        try:
            bounds[k] = float(v)
        except ValueError:
            ap.error(f"--p99-ms: '{item}' is not NAME=MS")
    args.p99_ms = bounds
    if args.device_quota == "none":
        args.device_quota = None
    else:
        try:
            args.device_quota = float(args.device_quota)
        except ValueError:
            ap.error(f"--device-quota: '{args.device_quota}' is not a number or 'none'")
        if not 0.01 <= args.device_quota <= os.cpu_count():
            ap.error("--device-quota: between 0.01 and the number of cores")
    for k in ("rounds", "requests_fmnist", "requests_image", "device_threads", "edge_threads"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')}: at least 1")
    args.out = os.path.join(ROOT, args.out) if not os.path.isabs(args.out) else args.out
    return args


def main():
    args = parse_args()
    if args.report_only:  # the tables, plots (and README) again from the last run's results.json
        res = json.load(open(os.path.join(args.out, "results.json")))
        for k in ("bundles", "rates", "rtt_ms", "requests_fmnist", "requests_image", "warmup", "overhead_image"):
            setattr(args, k, res["config"][k])
        args.no_build = True
        _, bundles = prepare(args)
        return finish(args, res, bundles)
    t0 = time.monotonic()
    for d in ("raw", "logs"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    models, bundles = prepare(args)
    h = Harness(args.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        device = h.device(args.device_quota, args.device_threads)
        power_src = power.detect()
        env = environment(args, device, power_src)
        log(f"== {env['cpu']}, {env['cores']} cores; device: {env['device']}; power: {env['power']}")
        res = {"environment": env,
               "config": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()
                          if k not in ("out", "readme", "no_build")},
               "single_stream": [], "accuracy": [], "overhead": [], "throughput": [], "poisson": []}
        if "single" in args.scenarios:
            res["single_stream"] = single_stream(args, h, bundles, models, device, power_src)
        h.close()
        if "accuracy" in args.scenarios:
            res["accuracy"] = accuracy_pass(args, h, bundles, models)
            h.close()
        if "overhead" in args.scenarios:
            res["overhead"] = overhead(args, bundles)
        if "throughput" in args.scenarios:
            res["throughput"] = throughput(args, bundles)
        if "poisson" in args.scenarios:
            res["poisson"] = poisson(args, h, bundles, models, res["throughput"])
        h.close()
    finally:
        h.close()
    res["seconds"] = time.monotonic() - t0
    res["bars"] = {"weak_device_resnet50": weak_device_bar(res)}
    json.dump(res, open(os.path.join(args.out, "results.json"), "w"), indent=1)
    finish(args, res, bundles)


def finish(args, res, bundles):
    write_csvs(args, res)
    paths = plots(args, res, bundles)
    text = report(args, res, bundles, paths, "plots/")
    open(os.path.join(args.out, "report.md"), "w").write(text)
    print("\n" + text)
    log(f"== {res['seconds'] / 60:.1f} min; results in {os.path.relpath(args.out, ROOT)}/ (results.json, "
        f"single_stream.csv, peer.csv, poisson.csv, report.md, plots/)")
    if args.readme:
        update_readme(args, report(args, res, bundles, paths, "benchmarks/results/"), paths)


if __name__ == "__main__":
    main()
