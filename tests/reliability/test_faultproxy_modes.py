"""The fault proxy's additions for issue 7: ``skip`` (fail after N requests), ``probability`` with a seeded RNG
and ``OneOf`` (random-fault mode), ``Rewrite`` (change a response header, e.g. a realm or a Link)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from harness.faultproxy import OneOf, Respond, Rewrite

pytestmark = pytest.mark.registry


def _get(proxy: Any, path: str = "/v2/") -> requests.Response:
    return requests.get(proxy.url + path, timeout=5)


def test_skip_lets_the_first_requests_through(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Respond(401), path="/v2/", times=None, skip=2)
    assert [_get(fault_proxy).status_code for _ in range(4)] == [200, 200, 401, 401]


def test_probability_and_one_of_are_reproducible_with_a_seed(fault_proxy: Any) -> None:
    def sample() -> list[int]:
        fault_proxy.clear()
        fault_proxy.rules.seed(7)
        fault_proxy.rules.add(OneOf((Respond(503), Respond(429))), times=None, probability=0.3)
        return [_get(fault_proxy).status_code for _ in range(60)]

    first = sample()
    assert first == sample()
    faults = [s for s in first if s != 200]
    assert 5 <= len(faults) <= 35 and {503, 429} <= set(faults)
    assert sum(1 for seen in fault_proxy.requests if seen.rule == "Respond") == len(faults)


def test_rewrite_changes_or_adds_a_response_header(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Rewrite("Docker-Distribution-Api-Version", r"registry/", "other/"), path="/v2/")
    assert _get(fault_proxy).headers["Docker-Distribution-Api-Version"] == "other/2.0"
    fault_proxy.rules.add(Rewrite("Link", "", '<http://elsewhere/v2/>; rel="next"', add=True), path="/v2/")
    assert _get(fault_proxy).headers["Link"] == '<http://elsewhere/v2/>; rel="next"'
