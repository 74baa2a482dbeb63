"""``check`` and ``map`` from start to exit, this checkout against another one, in the same run.

Run by hand: ``python bench/check_map.py --before DIR`` where DIR holds another checkout of the bot (for example
``git worktree add --detach /tmp/before <commit>``). Each command runs as its own process, as a user runs it,
alternating between the two checkouts; the best of ``--runs`` is kept (these machines are noisy) and the ratio
after/before is printed, for wall time and for CPU time (user + system, steadier when other work shares the
machine). The lists are the original service's: the 74k-line mirrored list as
``mirror/mirrored-images.txt``, and its first 500 lines, without their digests, as the request list.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DATA = HERE / "tests" / "data" / "upstream" / "upstream-mirrored-images.txt"
REGISTRY = "mirror.example.com"


def workdir(root: Path) -> list[str]:
    """A checkout's ``mirror/`` with the real lists; returns the references ``map`` is given."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    requests = [line.split("@", 1)[0] for line in lines[:500]]
    mirror = root / "mirror"
    mirror.mkdir()
    (mirror / "mirrored-images.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (mirror / "required-images.txt").write_text("\n".join(requests) + "\n", encoding="utf-8")
    (mirror / "required-images-daily.txt").write_text("", encoding="utf-8")
    (mirror / "config.yml").write_text(f"target:\n  registry: {REGISTRY}\n", encoding="utf-8")
    return requests[:200]


def timed(tree: Path, argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run; CPU time varies less on a busy machine."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *argv],
        cwd=cwd,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    proc.stderr.close()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{tree}: {' '.join(argv)} exited {proc.returncode}: {errors.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="another checkout of the bot")
    parser.add_argument("--after", type=Path, default=HERE, help="the checkout to compare (default: this one)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        refs = workdir(cwd)
        commands = {
            "check": ["check"],
            "map": ["map", "--registry", REGISTRY, *refs],
        }
        trees = {"before": args.before.resolve(), "after": args.after.resolve()}
        wall = {(name, tree): float("inf") for name in commands for tree in trees}
        cpu = dict(wall)
        for _ in range(args.runs):
            for name, argv in commands.items():
                for label, tree in trees.items():
                    seconds, used = timed(tree, argv, cwd)
                    wall[name, label] = min(wall[name, label], seconds)
                    cpu[name, label] = min(cpu[name, label], used)
    for name in commands:
        for what, best in (("wall", wall), ("cpu", cpu)):
            before, after = best[name, "before"], best[name, "after"]
            print(f"{name:6} {what:4} before {before:.3f} s  after {after:.3f} s  after/before {after / before:.2f}")


if __name__ == "__main__":
    main()
