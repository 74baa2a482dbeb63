"""Two runs recording into one mirrored list at once (a self-hosted runner: the daily run and a sync by hand in
one checkout) merge their lines: none is lost, neither crashes, no temporary file is left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import figures
from tests.harness.bot_process import ROOT

RECORDS = 150

# One process: record RECORDS images, one run at a time, as `sync` and `daily` end.
WRITER = """
import contextlib, io, sys
from pathlib import Path
from bot.recording import record
from bot.reference import parse_reference
from bot.settings import Settings
from bot.shard import Results, parse_shard

path, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(count):
    ref = parse_reference(f"docker.io/library/{who}{i}:1@sha256:{i:064x}")
    results = Results("sync", parse_shard("1/1"), (ref,), (), (), ())
    with contextlib.redirect_stdout(io.StringIO()):
        status = record([results], mirrored=path, commit=False, title="t", settings=Settings())
    assert status == 0, status
print("done")
"""


def test_two_runs_recording_at_once_keep_every_line(tmp_path: Path) -> None:
    mirrored = tmp_path / "mirror" / "mirrored-images.txt"
    mirrored.parent.mkdir()
    kept = "quay.io/team/kept:1@sha256:" + "a" * 64
    mirrored.write_text(kept + "\n", encoding="utf-8")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(mirrored), who, str(RECORDS)],
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("first", "second")
    ]
    outputs = [writer.communicate(timeout=120) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0 and out == "done\n", err
        assert err == ""
    lines = mirrored.read_text(encoding="utf-8").splitlines()
    expected = {kept} | {
        f"docker.io/library/{who}{i}:1@sha256:{i:064x}" for who in ("first", "second") for i in range(RECORDS)
    }
    assert len(lines) == len(expected) and set(lines) == expected
    assert lines == sorted(lines)
    # Only the list remains: every temporary file was renamed into place, and the lock leaves no file.
    assert [path.name for path in mirrored.parent.iterdir()] == [mirrored.name]
    figures.count("concurrent list updates merged without loss", 2 * RECORDS)
    figures.count("wrong entries in mirrored-images.txt", 0)
