"""The pull budget: reads ratelimit-remaining, keeps the reserve, learns what an image costs."""

from __future__ import annotations

from collections.abc import Sequence

import requests

from bot.daily import PullBudget, RepositoryPlan, TagPlan, copy_within_budget, parse_ratelimit
from bot.reference import parse_reference
from bot.registry.client import RegistryClient


def answer(url: str, remaining: int | None) -> requests.Response:
    response = requests.Response()
    response.url = url
    response.status_code = 200
    if remaining is not None:
        response.headers["ratelimit-remaining"] = f"{remaining};w=21600"
    return response


def test_parse_ratelimit() -> None:
    assert parse_ratelimit("76;w=21600") == 76
    assert parse_ratelimit("0") == 0
    assert parse_ratelimit(None) is None
    assert parse_ratelimit("lots") is None


def test_docker_hub_hosts_share_one_budget_and_others_are_unlimited() -> None:
    budget = PullBudget(reserve=10)
    budget.observe(answer("https://registry-1.docker.io/v2/library/nginx/manifests/1", 40))
    budget.observe(answer("https://quay.io/v2/a/b/manifests/1", None))
    assert budget.remaining("docker.io") == 40
    assert budget.images_allowed("docker.io", 100) == 10  # (40 - 10) // 3
    assert budget.images_allowed("quay.io", 100) == 100


def test_copies_run_in_chunks_and_stop_at_the_reserve() -> None:
    budget = PullBudget(reserve=10)
    host = "registry.example"
    budget.observe(answer(f"https://{host}/v2/", 40))
    plan = RepositoryPlan(
        parse_reference(f"{host}/team/app"),
        copy=tuple(TagPlan(f"1.{n}", None, None) for n in range(20)),
    )
    chunks: list[list[str]] = []
    left_count = [40]

    def copy(tags: Sequence[TagPlan]) -> None:
        chunks.append([tag.tag for tag in tags])
        left_count[0] = max(0, left_count[0] - 5 * len(tags))  # each image really costs 5 pulls
        budget.observe(answer(f"https://{host}/v2/team/app/manifests/x", left_count[0]))

    with RegistryClient() as client:
        left = copy_within_budget(plan, budget, client, copy)
    # One image first (it costs 5), then the 25 spare pulls allow 5 more; the reserve of 10 is never touched.
    assert [len(chunk) for chunk in chunks] == [1, 5]
    assert len(left) == 14
    assert left_count[0] == 10
    assert budget.cost(host) == 5


def test_unknown_limits_copy_everything_at_once() -> None:
    budget = PullBudget()
    plan = RepositoryPlan(parse_reference("quay.io/a/b"), copy=(TagPlan("1", None, None), TagPlan("2", None, None)))
    chunks: list[int] = []
    with RegistryClient() as client:
        assert copy_within_budget(plan, budget, client, lambda tags: chunks.append(len(tags))) == ()
    assert chunks == [2]
