"""Raw TCP over the emulated link: what the link itself carries, with no registry protocol on top.

``wan.py`` runs this in the namespaces it builds, to measure the ceiling a copy tool is held against:

    link_probe.py sink PORT                          accept connections; read each to its end, answer one byte
    link_probe.py send HOST PORT BYTES STREAMS       send BYTES split over STREAMS connections at once; print
                                                     the seconds from the first connect to the last answer

The answer byte is sent after the sink has read everything, so the time covers delivery, not only the
sender's buffers. The bytes are random (nothing on the path compresses, and neither do registries' layers).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


def sink(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port), backlog=256)

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(CHUNK):
                pass
            conn.sendall(b"k")

    while True:
        conn, _ = server.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def send(host: str, port: int, total: int, streams: int) -> float:
    block = os.urandom(CHUNK)
    sizes = [total // streams + (1 if i < total % streams else 0) for i in range(streams)]
    failures: list[BaseException] = []

    def one(size: int) -> None:
        try:
            with socket.create_connection((host, port)) as conn:
                view = memoryview(block)
                while size > 0:
                    step = min(size, CHUNK)
                    conn.sendall(view[:step])
                    size -= step
                conn.shutdown(socket.SHUT_WR)
                if conn.recv(1) != b"k":
                    raise ConnectionError("the sink did not confirm")
        except BaseException as exc:
            failures.append(exc)

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(size,)) for size in sizes if size]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"link_probe: {failures[0]}")
    return time.monotonic() - start


def main(argv: list[str]) -> int:
    if argv[:1] == ["sink"] and len(argv) == 2:
        sink(int(argv[1]))
        return 0
    if argv[:1] == ["send"] and len(argv) == 5:
        seconds = send(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
        print(json.dumps({"seconds": seconds}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
