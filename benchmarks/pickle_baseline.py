#!/usr/bin/env python3
"""The peer baseline: what split-computing research code does today, in python3-torch.

Head on the "device", torchdistill quantization, the quantized tensor pickled over TCP with an
8-byte length prefix, unpickled, dequantized and run through the tail on the "server" (a
separate process on 127.0.0.1), logits pickled back. Same TorchScript files as libsplit.
Reports per-request overhead = total - head - tail (the tail as timed by the server).

  /usr/bin/python3 benchmarks/pickle_baseline.py --bundle models/fmnist-resnet --split bf2

With --throughput, the server's throughput instead: it serves every connection on a thread of
its own (the tail releases the GIL, as a threaded research server would run it), and --clients
client processes send the same quantized bottleneck closed-loop (the next request when the
previous is answered) for --warmup-s + --seconds; answers completed inside the measured window
count. Prints requests per second and round-trip percentiles (JSON with --json).

  /usr/bin/python3 benchmarks/pickle_baseline.py --bundle models/fmnist-resnet --split bf2 \
      --throughput --clients 8 --seconds 20

--serve-only runs the threaded peer server alone (it prints its port, and stops when its standard
input closes; with --listen HOST:PORT it listens there until interrupted, for an edge machine); --connect HOST:PORT points the single-stream client at such a server instead of
starting its own, e.g. through a link emulator, as benchmarks/suite.py does.
"""
import argparse
import json
import multiprocessing
import os
import pickle
import socket
import struct
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from libsplit_tools import quant  # noqa: E402


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


def recv_msg(sock):
    (n,) = struct.unpack("<Q", recv_exact(sock, 8))
    return recv_exact(sock, n)


def send_msg(sock, payload):
    sock.sendall(struct.pack("<Q", len(payload)) + payload)


def answer(conn, tail):
    """The peer server's loop for one connection: unpickle, dequantize, tail, pickle back."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with torch.no_grad():
        while True:
            try:
                msg = pickle.loads(recv_msg(conn))
            except ConnectionError:
                return
            t0 = time.perf_counter()
            z = quant.dequantize_tensor(msg["q"], msg["scale"], msg["zero_point"])
            logits = tail(z)
            t1 = time.perf_counter()
            send_msg(conn, pickle.dumps({"logits": logits, "tail_s": t1 - t0}))


def serve(args):
    torch.set_num_threads(args.threads)
    tail = torch.jit.load(os.path.join(args.bundle, args.tail_file)).eval()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    answer(conn, tail)


def serve_many(args):
    """One thread per connection; each runs dequantize + tail under torch.no_grad()."""
    import socketserver
    import threading

    torch.set_num_threads(args.threads)
    tail = torch.jit.load(os.path.join(args.bundle, args.tail_file)).eval()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            answer(self.request, tail)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    host, port = "127.0.0.1", 0
    if args.listen:
        host, _, p = args.listen.rpartition(":")
        if not host or not p.isdigit():
            sys.exit(f"pickle_baseline: --listen '{args.listen}': expected HOST:PORT")
        port = int(p)
    srv = Server((host, port), Handler)
    print(srv.server_address[1], flush=True)
    if args.listen:  # a standing server: until interrupted
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
        return
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the parent closes our stdin
    srv.shutdown()


def load_client(port, payload, t_from, t_until, out):
    """One closed-loop client process: completions (and their round trips) inside the window."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    while True:
        a = time.time()
        if a >= t_until:
            break
        send_msg(sock, payload)
        pickle.loads(recv_msg(sock))["logits"].softmax(1).topk(1)
        b = time.time()
        if t_from <= b <= t_until:
            lat.append((b - a) * 1000)
    sock.close()
    out.put(lat)


def throughput(args, manifest, split):
    torch.set_num_threads(args.threads)
    head = torch.jit.load(os.path.join(args.bundle, split["head"])).eval()
    g = torch.Generator().manual_seed(42)
    shape = manifest["input"]["shape"]
    mean = torch.tensor(manifest["input"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(manifest["input"]["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        z = head((torch.randint(0, 256, shape, generator=g).float() / 255.0 - mean) / std)
    q, scale, zp = quant.quantize_tensor(z, 8)
    payload = pickle.dumps({"q": q, "scale": scale, "zero_point": zp})
    server = subprocess.Popen([sys.executable, __file__, "--serve-many", "--bundle", args.bundle, "--tail-file",
                               split["tail"], "--threads", str(args.threads)], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        t_from = time.time() + 2.0 + args.warmup_s  # 2 s for the client processes to start
        t_until = t_from + args.seconds
        procs = [ctx.Process(target=load_client, args=(port, payload, t_from, t_until, out)) for _ in range(args.clients)]
        for p in procs:
            p.start()
        lat = []
        for _ in procs:
            lat += out.get(timeout=args.warmup_s + args.seconds + 120)
        for p in procs:
            p.join()
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    rps = len(lat) / args.seconds
    p = pct(lat) if lat else {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    print(f"pickle-over-TCP baseline server, bundle {manifest['name']} split {split['id']}: {args.clients} clients, "
          f"{args.threads} thread(s) per forward, {args.seconds:.0f} s after {args.warmup_s:.0f} s warm-up: "
          f"{rps:.2f} req/s, round trip p50 {p['p50']:.3f} ms p99 {p['p99']:.3f} ms ({len(lat)} requests)")
    if args.json:
        json.dump({"bundle": manifest["name"], "split": split["id"], "clients": args.clients, "seconds": args.seconds,
                   "rps": rps, "requests": len(lat), "round_trip_ms": p}, open(args.json, "w"), indent=2)


def pct(v):
    v = sorted(v)
    at = lambda q: v[min(len(v) - 1, max(0, int(-(-q * len(v) // 1)) - 1))]  # noqa: E731
    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--split", help="split id (default: the manifest's default_split)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--throughput", action="store_true", help="measure the server's throughput (see above)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup-s", type=float, default=3)
    ap.add_argument("--serve-only", action="store_true",
                    help="run the threaded peer server for --split alone: prints its port, stops when stdin closes")
    ap.add_argument("--pause-every", type=int, default=0, metavar="N",
                    help="single stream: after every N measured requests print '# paused' and wait for a line on "
                    "stdin (a benchmark changes the link between phases)")
    ap.add_argument("--listen", metavar="HOST:PORT", help="--serve-only: listen here until interrupted")
    ap.add_argument("--connect", metavar="HOST:PORT", help="single stream: use this running peer server")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-many", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tail-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args)
    if args.serve_many:
        return serve_many(args)
    manifest = json.load(open(os.path.join(args.bundle, "manifest.json")))
    split_id = args.split or manifest.get("default_split") or manifest["splits"][0]["id"]
    split = next((s for s in manifest["splits"] if s["id"] == split_id), None)
    if split is None:
        sys.exit(f"pickle_baseline: no split '{split_id}' in {args.bundle}")
    if args.serve_only:
        args.tail_file = split["tail"]
        return serve_many(args)
    if args.throughput:
        return throughput(args, manifest, split)
    torch.set_num_threads(args.threads)
    head = torch.jit.load(os.path.join(args.bundle, split["head"])).eval()
    server = None
    if args.connect:
        host, _, port = args.connect.rpartition(":")
        if not host or not port.isdigit():
            sys.exit(f"pickle_baseline: --connect '{args.connect}': expected HOST:PORT")
        address = (host, int(port))
    else:
        server = subprocess.Popen([sys.executable, __file__, "--serve", "--bundle", args.bundle, "--tail-file",
                                   split["tail"], "--threads", str(args.threads)], stdout=subprocess.PIPE, text=True)
    try:
        if server is not None:
            address = ("127.0.0.1", int(server.stdout.readline()))
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        g = torch.Generator().manual_seed(42)
        shape = manifest["input"]["shape"]
        mean = torch.tensor(manifest["input"]["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(manifest["input"]["std"]).view(1, -1, 1, 1)
        rows = {k: [] for k in ("head", "encode", "network", "tail", "total", "overhead")}
        wire = 0
        with torch.no_grad():
            pausing = args.pause_every > 0
            for i in range(args.warmup + args.requests):
                j = i - args.warmup  # measured requests before this one
                if pausing and j > 0 and j % args.pause_every == 0:
                    print(f"# paused after request {j}", flush=True)
                    pausing = sys.stdin.readline() != ""  # end of input: go on without pausing
                pixels = torch.randint(0, 256, shape, generator=g).float()
                t0 = time.perf_counter()
                x = (pixels / 255.0 - mean) / std
                z = head(x)
                t1 = time.perf_counter()
                q, scale, zp = quant.quantize_tensor(z, 8)
                payload = pickle.dumps({"q": q, "scale": scale, "zero_point": zp})
                t2 = time.perf_counter()
                send_msg(sock, payload)
                reply = pickle.loads(recv_msg(sock))
                reply["logits"].softmax(1).topk(5)
                t3 = time.perf_counter()
                if i < args.warmup:
                    continue
                us = 1e6
                rows["head"].append((t1 - t0) * us)
                rows["encode"].append((t2 - t1) * us)
                rows["tail"].append(reply["tail_s"] * us)
                rows["network"].append((t3 - t2 - reply["tail_s"]) * us)
                rows["total"].append((t3 - t0) * us)
                rows["overhead"].append((t3 - t0 - (t1 - t0) - reply["tail_s"]) * us)
                wire = len(payload) + 8
        sock.close()
    finally:
        if server is not None:
            server.wait(timeout=30)
    out = {k: pct(v) for k, v in rows.items()}
    print(f"pickle-over-TCP baseline, bundle {manifest['name']} split {split_id}: {args.requests} requests after "
          f"{args.warmup} warm-up, {args.threads} thread(s), {wire} B on the wire per request")
    print(f"{'stage':<10} {'p50':>10} {'p90':>10} {'p99':>10} {'max':>10}   (microseconds)")
    for k, p in out.items():
        print(f"{k:<10} {p['p50']:10.1f} {p['p90']:10.1f} {p['p99']:10.1f} {p['max']:10.1f}")
    if args.json:
        json.dump({"bundle": manifest["name"], "split": split_id, "requests": args.requests, "wire_bytes": wire,
                   "us": out, "total_ms_samples": [round(v / 1000, 4) for v in rows["total"]]}, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
