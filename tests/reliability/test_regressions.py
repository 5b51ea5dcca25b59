"""Regression tests for bugs found while building the reliability harness (issue 7), one section per bug.

Each test failed before its fix (the commit that adds the test also fixes the bug).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness.faultproxy import Reset, Truncate

from fixtures.build import EXPECTED
from ociinspect.registry import HostSettings, RegistryClient, RegistrySettings

BASE = EXPECTED["base"]
LAYER = BASE.layers[0]

# ------------------------------------------------ 1. a body that breaks off was not retried (registry client)
# docs/cli.md: "--retries N: retries after the first attempt on connection errors". A reset or a truncated body
# *after* the response headers (the usual shape of a flaky proxy or LB) raised ConnectionFailed at once, so one
# hiccup failed a CI job. Manifests, whole blobs and Range reads are now fetched again, like a reset before the
# answer; read timeouts still are not retried, and layer streams are not restarted.


@pytest.mark.registry
@pytest.mark.parametrize("fault", [Reset(after=2), Truncate(keep=2)], ids=["reset", "truncate"])
@pytest.mark.parametrize("call", ["manifest", "blob", "range"])
def test_body_broken_off_once_is_fetched_again(fault_proxy: Any, fault: Reset | Truncate, call: str) -> None:
    path = "/manifests/latest" if call == "manifest" else f"/blobs/{LAYER.digest}"
    fault_proxy.rules.add(fault, method="GET", path=path, times=1)
    settings = RegistrySettings(default=HostSettings(plain_http=True), retries=1, backoff=0.01)
    with RegistryClient(settings) as client:
        if call == "manifest":
            assert (
                client.get_manifest(fault_proxy.host, "fixtures/base", "latest").digest
                == BASE.manifest_digest
            )
        elif call == "blob":
            data = client.get_blob(fault_proxy.host, "fixtures/base", LAYER.digest, max_bytes=1 << 20)
            assert len(data) == LAYER.size
        else:
            tail, total = client.get_blob_range(fault_proxy.host, "fixtures/base", LAYER.digest, suffix=4)
            assert int.from_bytes(tail, "little") == LAYER.gzip_isize and total == LAYER.size
    assert sum(1 for s in fault_proxy.requests if path in s.target) == 2
