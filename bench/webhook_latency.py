"""Admission latency of ``python -m bot webhook`` over real HTTPS (run by hand, never a timed test).

Starts the webhook with the given mirrored list (default: the original service's 74k-line list), then sends
N AdmissionReviews from C concurrent clients, each on its own kept-alive TLS connection as the API server
does, and prints p50/p90/p99/max. Clients run in separate processes so their own work does not share the
server's interpreter lock. There is no peer tool to compare with here (skopeo does not admit pods); the
figure to hold against is the target: p99 under 50 ms.

    .venv/bin/python bench/webhook_latency.py [--requests 1000] [--clients 20] [--mirrored FILE]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.registry import tls_material  # noqa: E402

DEFAULT_LIST = REPO / "tests" / "data" / "upstream" / "upstream-mirrored-images.txt"
TARGET_P99_MS = 50.0


def write_certificate(directory: Path) -> None:
    """``tls.crt``/``tls.key`` for 127.0.0.1 and ``ca.crt``, the CA the clients trust (the test harness's)."""
    ca, cert, key = tls_material()
    (directory / "ca.crt").write_bytes(ca)
    (directory / "tls.crt").write_bytes(cert)
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.key").chmod(0o600)


def reviews(count: int, mirrored: list[str], seed: int) -> list[bytes]:
    """Pods like a cluster creates them: 1-3 containers, some init containers, mirrored and unmirrored images."""
    rng = random.Random(seed)
    unmirrored = ["example/app:1.0", "redis:6.0.99", "quay.io/team/tool:v9", "internal.example.com/app:2"]
    bodies = []
    for _ in range(count):

        def image() -> str:
            return rng.choice(mirrored) if rng.random() < 0.8 else rng.choice(unmirrored)

        containers = [{"name": f"c{i}", "image": image(), "resources": {}} for i in range(rng.randint(1, 3))]
        spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Always"}
        if rng.random() < 0.3:
            spec["initContainers"] = [{"name": "init", "image": image()}]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "app-", "namespace": "bench", "labels": {"app": "bench"}},
            "spec": spec,
        }
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "bench",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": None,
                "dryRun": False,
            },
        }
        bodies.append(json.dumps(review).encode())
    return bodies


def client(port: int, cert: str, bodies: list[bytes], barrier: Any, results: Any) -> None:
    """One API-server-like client: a kept-alive TLS connection, requests one after another."""
    context = ssl.create_default_context(cafile=cert)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.connect()
    if barrier is not None:
        barrier.wait()  # every client is connected and ready: start together
    latencies, errors, patched = [], 0, 0
    responses: list[tuple[int, bytes]] = []
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        responses.append((response.status, data))
    connection.close()
    # Answers are checked after the timed loop, so the client's own work stays out of the measured window.
    for body, (status, data) in zip(bodies, responses, strict=True):
        answer = json.loads(data)["response"] if status == 200 else None
        if answer is None or answer["uid"] != json.loads(body)["request"]["uid"] or answer["allowed"] is not True:
            errors += 1
        elif "patch" in answer:
            patched += bool(json.loads(base64.b64decode(answer["patch"])))
    results.put((latencies, errors, patched))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(server: subprocess.Popen[bytes], port: int, cert: Path, log_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(cert))
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the webhook exited:\n{log_path.read_text()}")
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.02)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--mirrored", type=Path, default=DEFAULT_LIST)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="info", help="the webhook's log level (info logs every admission)")
    args = parser.parse_args()
    load_before = os.getloadavg()  # other work on the machine shows in the tail latency

    lines = [
        line.strip() for line in args.mirrored.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        write_certificate(directory)
        log_path = directory / "webhook.log"
        command = [
            sys.executable,
            "-m",
            "bot",
            "webhook",
            "--cert",
            str(directory / "tls.crt"),
            "--key",
            str(directory / "tls.key"),
            "--mirrored",
            str(args.mirrored),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            args.log_level,
        ]
        port = free_port()
        command[command.index("0")] = str(port)
        loading = time.perf_counter()
        with log_path.open("w") as log:
            server = subprocess.Popen(command, cwd=REPO, stderr=log)
        try:
            wait_until_healthy(server, port, directory / "ca.crt", log_path)
            startup = time.perf_counter() - loading

            bodies = reviews(args.requests, lines, args.seed)
            # a short warm-up on one connection (first decisions, code paths), not counted
            context = multiprocessing.get_context("spawn")
            warm_up: Any = context.SimpleQueue()
            client(port, str(directory / "ca.crt"), reviews(20, lines, args.seed + 1), None, warm_up)
            warm_up.get()
            shares = [bodies[index :: args.clients] for index in range(args.clients)]
            barrier = context.Barrier(args.clients + 1)
            queue: Any = context.Queue()
            processes = [
                context.Process(target=client, args=(port, str(directory / "ca.crt"), share, barrier, queue))
                for share in shares
            ]
            for process in processes:
                process.start()
            barrier.wait()
            cpu_before = cpu_seconds(server.pid)
            began = time.perf_counter()
            results = [queue.get() for _ in processes]
            wall = time.perf_counter() - began
            server_cpu = cpu_seconds(server.pid) - cpu_before
            for process in processes:
                process.join()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
        records = [json.loads(line) for line in log_path.read_text().splitlines() if '"msg":"admission"' in line]
        admissions = len(records)
        server_ms = [record["ms"] for record in records]

    latencies = [value for result in results for value in result[0]]
    errors = sum(result[1] for result in results)
    patched = sum(result[2] for result in results)
    p50, p90, p99 = (percentile(latencies, q) for q in (0.50, 0.90, 0.99))
    load = ", ".join(f"{value:.1f}" for value in load_before)
    print(f"machine: {os.cpu_count()} CPUs, load average {load} before the run, Python {sys.version.split()[0]}")
    print(f"webhook: {len(lines)} mirrored lines from {args.mirrored.name}, ready in {startup:.2f} s")
    print(f"load: {len(latencies)} AdmissionReviews, {args.clients} concurrent kept-alive TLS clients")
    print(f"answers: {len(latencies) - errors} correct, {errors} wrong, {patched} with a patch; {admissions} logged")
    if server_ms:
        p50_server, p99_server = percentile(server_ms, 0.5), percentile(server_ms, 0.99)
        print(f"server-side ms (parse, decide, answer; from its logs): p50 {p50_server:.2f}  p99 {p99_server:.2f}")
    print(
        f"latency ms: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  max {max(latencies):.2f}  "
        f"mean {statistics.fmean(latencies):.2f}"
    )
    print(f"throughput: {len(latencies) / wall:.0f} requests/s (wall clock, clients included)")
    print(f"webhook CPU: {server_cpu * 1000 / len(latencies):.2f} ms per review (TLS, HTTP, JSON, decision, log)")
    verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
    print(f"target: p99 < {TARGET_P99_MS:.0f} ms: {verdict} (p99 is {p99 / TARGET_P99_MS:.2f}x the target)")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
