"""The one GitHub request policy (bot.github.api): what is retried, what is final, how an answer is worded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from github import GithubException

from bot.errors import GitHubError
from bot.github import api


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "POLICY", api.RetryPolicy(budget=2.0, first_wait=0.01, max_wait=0.05, secondary_wait=0.02))


def answers(*outcomes: BaseException | str) -> tuple[Callable[[], str], list[int]]:
    """An operation that raises or returns ``outcomes`` in turn, and the count of its calls."""
    calls = [0]

    def operation() -> str:
        outcome = outcomes[calls[0]]
        calls[0] += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return operation, calls


def github(status: int, message: str = "", headers: dict[str, str] | None = None) -> GithubException:
    return GithubException(status, {"message": message} if message else None, headers or {})


@pytest.mark.parametrize(
    "temporary",
    [
        github(502),
        github(503, "Service Unavailable"),
        github(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
        github(403, "Forbidden", {"Retry-After": "0"}),
        github(429, "Too Many Requests"),
        github(403, "API rate limit exceeded", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}),
        requests.ConnectionError("reset by peer"),
        requests.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("broke off"),
    ],
)
def test_temporary_errors_are_tried_again(temporary: BaseException) -> None:
    operation, calls = answers(temporary, "ok")
    assert api.call("read it", operation) == "ok"
    assert calls[0] == 2


@pytest.mark.parametrize(
    "final",
    [
        github(403, "Resource not accessible by integration"),
        github(404, "Not Found"),
        github(409, "x does not match y"),
    ],
)
def test_final_answers_reach_the_caller_at_once(final: GithubException) -> None:
    operation, calls = answers(final, "ok")
    with pytest.raises(GithubException):
        api.call("read it", operation)
    assert calls[0] == 1


def test_anything_else_is_one_sentence_and_ask_words_final_answers_too() -> None:
    operation, _ = answers(requests.exceptions.InvalidURL("bad url"))
    with pytest.raises(GitHubError, match=r"^cannot read it: InvalidURL: bad url$"):
        api.call("read it", operation)
    operation, _ = answers(github(404, "Not Found"))
    with pytest.raises(GitHubError, match=r"^cannot read it: 404 Not Found; hint$"):
        api.ask("read it", operation, "; hint")


def test_an_outage_past_the_budget_says_so() -> None:
    operation, calls = answers(*[github(502)] * 1000)
    with pytest.raises(GitHubError, match=r"GitHub did not answer successfully in \d+ tries .*last: 502 Bad Gateway"):
        api.call("write the comment", operation)
    assert calls[0] > 3


def test_message_names_the_status_the_message_and_the_first_validation_error() -> None:
    refused = GithubException(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": "No commits"}],
        },
        {},
    )
    assert api.message(refused) == "422 Validation Failed: No commits"
    assert api.message(github(502)) == "502 Bad Gateway"
    assert api.message(requests.ReadTimeout("x")) == "no answer within 30 s"
