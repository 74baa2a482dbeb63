"""The sync report as data: per-image lines, totals, and which images count as verified."""

from __future__ import annotations

from bot.reference import parse_reference
from bot.registry.copy import CopyResult, ImageLocation
from bot.rules import Target
from bot.sync import ImageResult, SyncReport

DIGEST = "sha256:" + "a" * 64


def _copy(**kwargs: object) -> CopyResult:
    src = ImageLocation("docker.io", "library/nginx", "1.25")
    dst = ImageLocation("mirror.example", "dockerhub/nginx", "1.25")
    return CopyResult(src, dst, DIGEST, DIGEST, "application/vnd.oci.image.index.v1+json", **kwargs)  # type: ignore[arg-type]


def test_report_lines_and_verified_images() -> None:
    ref = parse_reference("nginx:1.25")
    target = Target("mirror.example", "dockerhub/nginx", "1.25", None)
    moved = ImageResult(
        ref,
        target,
        True,
        None,
        DIGEST,
        DIGEST,
        2_621_440,
        False,
        True,
        (),
        _copy(bytes_moved=2_621_440, blobs_copied=3),
    )
    skipped = ImageResult(ref, target, True, None, DIGEST, DIGEST, 0, True, True, (), _copy(skipped=True))
    failed = ImageResult(parse_reference("quay.io/x/y:1"), None, False, "registry quay.io is not allowed")
    report = SyncReport((moved, skipped, failed))
    assert not report.ok
    assert report.verified() == (moved, skipped)
    assert report.failed == (failed,)
    assert moved.pinned_source == f"nginx:1.25@{DIGEST}"
    lines = report.summary_lines()
    assert lines[0] == (
        "OK      nginx:1.25 -> mirror.example/dockerhub/nginx:1.25: 2.5 MiB moved, blobs 3 copied / 0 mounted / "
        f"0 present ({DIGEST})"
    )
    assert lines[1].endswith(f"already up to date ({DIGEST})")
    assert lines[2] == "FAILED  quay.io/x/y:1 -> -: registry quay.io is not allowed"
    assert lines[3] == "3 images: 2 ok (1 already up to date), 1 failed; moved 2.5 MiB"


def test_dry_run_report_never_verifies() -> None:
    ref = parse_reference("nginx:1.25")
    target = Target("mirror.example", "dockerhub/nginx", "1.25", None)
    result = ImageResult(ref, target, True, None, DIGEST, DIGEST, 1000, False, False, (), _copy(dry_run=True))
    report = SyncReport((result,), dry_run=True)
    assert report.verified() == ()
    assert report.summary_lines() == [
        "DRY-RUN nginx:1.25 -> mirror.example/dockerhub/nginx:1.25: would copy 1000 B",
        "1 image: 1 ok (0 already up to date), 0 failed; would move 1000 B",
    ]
