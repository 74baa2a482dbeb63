"""Structured logs: one JSON object per line on stderr, cheap enough for the request path."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Log:
    def __init__(self, stream: TextIO | None = None, level: str = "info") -> None:
        self.stream = stream or sys.stderr
        self.threshold = LEVELS[level]
        self._lock = threading.Lock()

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def write(self, level: str, msg: str, **fields: Any) -> None:
        if LEVELS[level] < self.threshold:
            return
        record = {"ts": round(time.time(), 3), "level": level, "msg": msg, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()

    def debug(self, msg: str, **fields: Any) -> None:
        self.write("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.write("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.write("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.write("error", msg, **fields)
