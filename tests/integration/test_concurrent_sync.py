"""Two ``sync`` processes against the same target at once: overlapping images, shared layers, separate
checkouts. Both finish, the target holds every image digest-exact, and each list names exactly its images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import figures
from tests.harness.bot_process import Checkout
from tests.harness.images import KiB, LayerSpec, PushedImage, push_image
from tests.harness.registry import RegistryFactory, RegistryServer
from tests.harness.target_check import check_mirrored_list, check_target

BASE = (LayerSpec(size=768 * KiB, seed=1), LayerSpec(size=256 * KiB, seed=2, per_platform=False))


@pytest.fixture
def images(source: RegistryServer) -> dict[str, PushedImage]:
    """Six images sharing base layers: indexes with attestations, a docker list and a single manifest."""
    return {
        "app:1": push_image(source, "team/app", "1", base_layers=BASE, layers=(300 * KiB,), seed=1, attestations=True),
        "app:2": push_image(source, "team/app", "2", base_layers=BASE, layers=(200 * KiB,), seed=2),
        "tool:1": push_image(source, "team/tool", "1", base_layers=BASE, kind="docker-list", seed=3),
        "web:1": push_image(source, "library/web", "1", base_layers=BASE[:1], layers=(400 * KiB,), seed=4),
        "web:2": push_image(source, "library/web", "2", base_layers=BASE, layers=(100 * KiB,), seed=5),
        "solo:1": push_image(source, "team/solo", "1", base_layers=BASE[1:], kind="oci-manifest", seed=6),
    }


ROUNDS = 3


def test_two_syncs_at_once_both_finish_correctly(
    source: RegistryServer, registry_factory: RegistryFactory, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    first_set = ["app:1", "app:2", "tool:1", "web:2"]
    second_set = ["app:2", "tool:1", "web:1", "web:2", "solo:1"]
    verified = 0
    for round_ in range(ROUNDS):
        with registry_factory() as target:
            runs = []
            for name, chosen in (("a", first_set), ("b", second_set)):
                refs = [images[key].reference for key in chosen]
                checkout = Checkout.create(tmp_path / f"{round_}{name}", source.host, target.host, refs)
                runs.append((checkout, chosen))
            processes = [checkout.start_sync("--concurrency", "8") for checkout, _ in runs]
            outputs = [process.communicate(timeout=120) for process in processes]
            for process, (out, err) in zip(processes, outputs, strict=True):
                assert process.returncode == 0, f"{out}\n{err}"
            state = check_target(target)
            assert state.problems == []
            for key in {*first_set, *second_set}:
                image = images[key]
                assert state.tags[(f"src/{image.repository}", image.tag)] == image.digest
            for checkout, chosen in runs:
                expected = sorted(f"{images[key].reference}@{images[key].digest}" for key in chosen)
                assert checkout.mirrored_lines() == expected
                assert check_mirrored_list(checkout.mirrored, checkout.mapper, target, state) == []
            verified += len({*first_set, *second_set})
    figures.count("concurrent syncs finished correctly", 2 * ROUNDS)
    figures.count("images verified digest-exact at the target", verified)
    figures.count("wrong entries in mirrored-images.txt", 0)
