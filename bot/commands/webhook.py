"""``webhook``: serve the mutating admission webhook over HTTPS."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from bot.commands._options import config_from_args
from bot.config import find_config
from bot.errors import UsageError, WebhookError
from bot.lists import MIRRORED_LIST
from bot.webhook.log import LEVELS, Log
from bot.webhook.reload import Reloader, Sources, Watched, load_settings, tls_context
from bot.webhook.server import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PER_CLIENT,
    DEFAULT_TIMEOUT,
    WebhookServer,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "webhook",
        help="serve the mutating admission webhook that points pod images at the mirror",
        description="Serve AdmissionReview v1 over HTTPS on /mutate, with /healthz and /readyz. Pod images "
        "that are mirrored (or, with mode mappable, that any rule covers) are rewritten to the mirror with a "
        "JSONPatch; nothing is ever refused. Certificate, key, mirrored list and config are reloaded when "
        "their files change.",
    )
    parser.add_argument("--cert", type=Path, required=True, metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--key", type=Path, required=True, metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_LIST,
        metavar="FILE",
        help="the mirrored list, plain or .gz (default: %(default)s)",
    )
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help="config file (webhook: section)")
    parser.add_argument("--registry", default=None, metavar="HOST[/PREFIX]", help="override target.registry")
    parser.add_argument("--mode", choices=("mirrored", "mappable"), default=None, help="override webhook.mode")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8443, help="port to listen on; 0 picks a free one")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="socket timeout")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N")
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        metavar="SECONDS",
        help="time for a whole request: TLS handshake, headers and body (default: %(default)s)",
    )
    parser.add_argument(
        "--max-per-client",
        type=int,
        default=DEFAULT_PER_CLIENT,
        metavar="N",
        help="connections one client address may hold (default: %(default)s)",
    )
    parser.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--log-level", choices=tuple(LEVELS), default="info")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if min(args.reload_interval, args.timeout, args.max_body, args.max_connections, args.deadline) <= 0:
        raise UsageError(
            "--reload-interval, --timeout, --max-body, --max-connections and --deadline must be greater than zero"
        )
    if args.max_per_client <= 0:
        raise UsageError("--max-per-client must be greater than zero")
    log = Log(level=args.log_level)
    # Refuse to start with the built-in target; then reload the same file that was found.
    config_from_args(args, needs_target="webhook")
    sources = Sources(
        mirrored=args.mirrored,
        config=find_config(args.config, args.settings.config_path or None),
        registry=args.registry,
        mode=args.mode,
        namespace=args.settings.pod_namespace or None,
    )

    settings = Watched("settings", sources.paths, lambda: load_settings(sources), log)
    tls = Watched("certificate", (args.cert, args.key), lambda: tls_context(args.cert, args.key), log)
    try:
        server = WebhookServer(
            (args.host, args.port),
            settings,
            tls,
            log,
            max_body=args.max_body,
            timeout=args.timeout,
            max_connections=args.max_connections,
            deadline=args.deadline,
            per_client=args.max_per_client,
        )
    except OSError as exc:
        raise WebhookError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another --port") from exc
    reloader = Reloader((settings, tls), args.reload_interval)
    reloader.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        server.draining = True
        log.info("stopping", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever, so it must run outside the main thread that serves.
        threading.Thread(target=_drain_and_stop, args=(server,), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    policy = settings.value.policy
    log.info(
        "listening",
        host=args.host,
        port=server.port,
        registry=policy.mapper.registry,
        mode=policy.mode.value,
        mirrored=len(policy.index),
        excluded_namespaces=sorted(settings.value.exclude_namespaces),
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        reloader.stop()
        server.server_close()
    return 0


def _drain_and_stop(server: WebhookServer) -> None:
    time.sleep(0.2)  # let requests already in flight finish
    server.shutdown()
