"""Every network fault of issue 7, end to end: ``ociinspect inspect`` (the real CLI, in process) against the real
Distribution registry through the fault-injecting proxy (``tests/harness/faultproxy.py``).

For each fault: ociinspect retries where docs/cli.md says it does (connection errors, 429, 502/503/504), gives up
within ``--timeout``/``--retries``, reports a typed error with exit code 3 (JSON ``error.type``), and never prints
a wrong number: every success is compared with the facts the fixture builder computed (``fixtures.build``).

Client-level checks of the same faults live in ``tests/integration/test_registry_client.py`` and
``tests/unit/test_transport.py``; this file proves the whole path (CLI → session → loader → sizes → client).
The ``check_*`` functions hold scenario and assertions; the tests at the end re-run some of them with the
handling switched off (monkeypatch) and expect them to fail, so we know the assertions can fail.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from harness.endpoint import ProxyEndpoint
from harness.faultproxy import (
    Corrupt,
    Drip,
    Redirect,
    Reset,
    Respond,
    Stall,
    Truncate,
)

from fixtures.build import EXPECTED
from ociinspect import errors
from ociinspect.model import mediatypes
from ociinspect.registry import HostSettings, RegistrySettings
from ociinspect.registry import transport as transport_module
from ociinspect.session import Session
from reliability.helpers import CliRun, assert_image, inspect_json, requests_to, restored, run_cli

pytestmark = [pytest.mark.registry, pytest.mark.timeout(60)]

APP1 = EXPECTED["app1"]
CONFIG = APP1.config_digest
LAYER0, LAYER1 = (layer.digest for layer in APP1.layers)  # gzip base layer (9664 B), gzip app layer (218 B)
MANIFEST = "/fixtures/app1/manifests/latest"
TARGETS = {  # what a cheap `inspect` of fixtures/app1:latest fetches: manifest, config, two 8-byte trailers
    "manifest": MANIFEST,
    "config": f"/blobs/{CONFIG}",
    "trailer": f"/blobs/{LAYER1}",
}


def _ok(run: CliRun, name: str = "app1", *, digest: str | None = None) -> None:
    assert run.code == 0, run
    assert_image(run.doc, name, digest=digest)


def _failed(run: CliRun, *types: str) -> None:
    """Exit 3, one JSON error document of one of ``types``, no image data, one error line plus a hint."""
    assert run.code == 3, run
    assert run.error_type in types, run
    assert "layers" not in run.doc, run
    assert run.err.startswith("ociinspect: error: ") and "\n  hint: " in run.err, run


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


# ---------------------------------------------------------------------------------- reset, truncation


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("fault", [Reset(after=4), Truncate(keep=4)], ids=["reset", "truncate"])
def test_one_broken_body_is_retried(fault_proxy: Any, target: str, fault: Reset | Truncate) -> None:
    """Guards: a connection reset or a body cut short of its Content-Length (manifest, config, Range read)
    is a connection error, retried like one (docs/cli.md `--retries`) — the image is then read correctly."""
    check_broken_body_retried(fault_proxy, TARGETS[target], fault)


def check_broken_body_retried(proxy: Any, path: str, fault: Reset | Truncate) -> None:
    proxy.rules.add(fault, method="GET", path=path, times=1)
    run = inspect_json(proxy, "fixtures/app1:latest", "--retries", "2")
    _ok(run)
    assert requests_to(proxy, path) == 2


@pytest.mark.parametrize("fault", [Reset(after=4), Truncate(keep=4)], ids=["reset", "truncate"])
def test_broken_body_every_time_gives_up_after_the_retries(fault_proxy: Any, fault: Reset | Truncate) -> None:
    """Guards: retries are bounded (`--retries 1` = 2 attempts, back-off 0.5 s), then ConnectionFailed,
    exit 3."""
    fault_proxy.rules.add(fault, method="GET", path=MANIFEST, times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "1")
    _failed(run, "ConnectionFailed")
    assert requests_to(fault_proxy, MANIFEST) == 2
    assert run.seconds < 3


@pytest.mark.parametrize("fault", [Reset(after=1000), Truncate(keep=1000)], ids=["reset", "truncate"])
def test_broken_layer_stream_with_exact_is_an_error_not_a_size(
    fault_proxy: Any, fault: Reset | Truncate
) -> None:
    """Guards: `--exact` never reports the bytes it happened to count before a reset or truncation as the
    layer's size. (A layer stream is not resumed or restarted: the image fails with ConnectionFailed.)"""
    fault_proxy.rules.add(fault, method="GET", path=f"/blobs/{LAYER0}", times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--exact", "--retries", "1")
    _failed(run, "ConnectionFailed")


# ---------------------------------------------------------------------------------------------- stalls


def test_stall_before_the_answer_times_out_without_retrying(fault_proxy: Any) -> None:
    """Guards: a registry that accepts the request and then says nothing is given up after `--timeout`
    seconds (read timeouts are not retried: docs/cli.md), Timeout, exit 3 — no hang."""
    check_stall_times_out(fault_proxy)


def check_stall_times_out(proxy: Any) -> None:
    proxy.rules.add(Stall(1.5), method="GET", path=MANIFEST, times=None)
    run = inspect_json(proxy, "fixtures/app1:latest", "--timeout", "0.5", "--retries", "3")
    _failed(run, "Timeout")
    assert 0.5 <= run.seconds < 1.4, run
    assert requests_to(proxy, MANIFEST) == 1


def test_stall_in_the_middle_of_a_layer_times_out(fault_proxy: Any) -> None:
    """Guards: a stall after the first bytes of a streamed layer (`--exact`) ends in Timeout after
    `--timeout` seconds, not in a hang and not in a partial size."""
    fault_proxy.rules.add(Stall(3, after=100), method="GET", path=f"/blobs/{LAYER0}", times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--exact", "--timeout", "0.5")
    _failed(run, "Timeout")
    assert run.seconds < 2.0, run


def test_stall_shorter_than_the_timeout_is_waited_out(fault_proxy: Any) -> None:
    """Guards: `--timeout` is the patience per wait, not a hair trigger: a 0.4 s pause under a 3 s timeout
    still gives the right answer.  (The config and the layers' size evidence are read at the same time, so the
    two pauses overlap: at least 0.4 s, not 0.8.)"""
    fault_proxy.rules.add(Stall(0.4), method="GET", path=f"/blobs/{CONFIG}", times=1)
    fault_proxy.rules.add(Stall(0.4, after=4), method="GET", path=f"/blobs/{LAYER1}", times=1)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--timeout", "3")
    _ok(run)
    assert run.seconds >= 0.4
    assert requests_to(fault_proxy, f"/blobs/{CONFIG}") == 1  # waited out, not retried


# ----------------------------------------------------------------------------------------- slow drip


def test_slow_drip_within_the_timeout_gives_the_right_numbers(fault_proxy: Any) -> None:
    """Guards: a registry that sends 32 bytes every 10 ms (manifest, config, trailers; with `--exact` whole
    layers, 256 bytes at a time) is slow, not broken: the bytes are reassembled into exactly the right image."""
    fault_proxy.rules.add(Drip(32, 0.01), method="GET", times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--timeout", "1")
    _ok(run)
    fault_proxy.clear()
    fault_proxy.rules.add(Drip(256, 0.01), method="GET", times=None)
    run = inspect_json(fault_proxy, "fixtures/base:latest", "--exact", "--timeout", "1")
    _ok(run, "base")
    assert run.doc["layers"][0]["uncompressed_size_source"] == "streamed"


def test_drip_slower_than_the_timeout_is_a_timeout(fault_proxy: Any) -> None:
    """Guards: a gap between two chunks longer than `--timeout` ends the read (Timeout, exit 3) within about
    `--timeout` seconds."""
    fault_proxy.rules.add(Drip(64, 2.0), method="GET", path=MANIFEST, times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--timeout", "0.3")
    _failed(run, "Timeout")
    assert run.seconds < 1.5, run


# ------------------------------------------------------------------------------- wrong bodies (digests)


def test_corrupted_manifest_is_a_digest_mismatch(fault_proxy: Any) -> None:
    """Guards: one flipped byte in a manifest fetched by tag is caught against the registry's
    Docker-Content-Digest (DigestMismatch, exit 3); by digest, against the digest asked for."""
    fault_proxy.rules.add(Corrupt(), method="GET", path="/manifests/", times=None)
    _failed(inspect_json(fault_proxy, "fixtures/app1:latest"), "DigestMismatch")
    _failed(inspect_json(fault_proxy, f"fixtures/app1@{APP1.manifest_digest}"), "DigestMismatch")


def test_another_valid_manifest_for_a_pinned_digest_is_refused(fault_proxy: Any, fixture_images: Any) -> None:
    """Guards: a registry (or proxy) that answers a digest-pinned ref with a *different, valid* manifest —
    and even sends the digest that was asked for as Docker-Content-Digest — is caught (DigestMismatch).
    Without the check ociinspect would print app2's layers as app1's."""
    check_other_manifest_refused(fault_proxy, fixture_images)


def check_other_manifest_refused(proxy: Any, fixture_images: Any) -> None:
    other = _blob(fixture_images["app2"], EXPECTED["app2"].manifest_digest)
    headers = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": APP1.manifest_digest}
    proxy.rules.add(Respond(200, headers, other), method="GET", path=f"/manifests/{APP1.manifest_digest}")
    _failed(inspect_json(proxy, f"fixtures/app1@{APP1.manifest_digest}"), "DigestMismatch")


def test_another_valid_config_is_refused(fault_proxy: Any, fixture_images: Any) -> None:
    """Guards: the config blob is verified against the manifest's digest: app2's config served for app1's is
    DigestMismatch, never app2's history/diff_ids shown for app1."""
    other = _blob(fixture_images["app2"], EXPECTED["app2"].config_digest or "")
    fault_proxy.rules.add(Respond(200, {}, other), method="GET", path=f"/blobs/{CONFIG}")
    _failed(inspect_json(fault_proxy, "fixtures/app1:latest"), "DigestMismatch")


@pytest.mark.parametrize("exact", [False, True], ids=["cheap", "exact"])
def test_another_valid_layer_is_refused(fault_proxy: Any, fixture_images: Any, exact: bool) -> None:
    """Guards: a different (valid gzip tar) layer served under app1's layer digest — even answering the
    Range request with a full 200 — is DigestMismatch, never that layer's uncompressed size."""
    check_other_layer_refused(fault_proxy, fixture_images, exact)


def check_other_layer_refused(proxy: Any, fixture_images: Any, exact: bool) -> None:
    other = _blob(fixture_images["app2"], EXPECTED["app2"].layers[1].digest)
    proxy.rules.add(Respond(200, {}, other), method="GET", path=f"/blobs/{LAYER1}", times=None)
    run = inspect_json(proxy, "fixtures/app1:latest", *(["--exact"] if exact else []))
    _failed(run, "DigestMismatch")


@pytest.mark.parametrize("name", ["app1", "plain", "zstd"])
def test_corrupted_layer_with_exact_is_an_error_not_a_size(fault_proxy: Any, name: str) -> None:
    """Guards: a flipped byte in a streamed layer (gzip, plain tar, zstd) ends in DigestMismatch (or, when
    the decompressor notices first, InvalidImage: corrupt stream), exit 3, never a size."""
    for layer in EXPECTED[name].layers:
        fault_proxy.rules.add(Corrupt(), method="GET", path=f"/blobs/{layer.digest}", times=None)
    run = inspect_json(fault_proxy, f"fixtures/{name}:latest", "--exact")
    _failed(run, "DigestMismatch", "InvalidImage")
    if name == "plain":  # nothing but the digest can notice a flipped byte in an uncompressed tar
        assert run.error_type == "DigestMismatch"


@pytest.mark.parametrize("offset", range(8))
@pytest.mark.parametrize("name", ["app1", "zstd"])
def test_corrupted_trailer_or_header_never_gives_a_wrong_size(
    fault_proxy: Any, name: str, offset: int
) -> None:
    """Guards: the 8-byte gzip trailer / 18-byte zstd header read by Range is not covered by a digest; a
    flipped byte in it must still not produce a wrong figure. On these layers every flip is caught by the
    plausibility checks of ociinspect.image.sizes (not a whole tar, impossible ratio) and the layer is streamed and
    verified instead. (On large layers a flipped high byte can stay plausible: docs/security.md.)"""
    layer = EXPECTED[name].layers[-1]
    fault_proxy.rules.add(Corrupt(offset=offset), method="GET", path=f"/blobs/{layer.digest}", times=1)
    run = inspect_json(fault_proxy, f"fixtures/{name}:latest")
    _ok(run, name)


# --------------------------------------------------------------------------------------------- 5xx


def test_500_is_not_retried(fault_proxy: Any) -> None:
    """Guards: a 500 is a server bug, not congestion: one request, RegistryError, exit 3 at once."""
    fault_proxy.rules.add(
        Respond(500, {}, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}'), path=MANIFEST
    )
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "3")
    _failed(run, "RegistryError")
    assert "HTTP 500" in run.err and requests_to(fault_proxy, MANIFEST) == 1
    assert run.seconds < 1.0


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_gateway_errors_are_retried(fault_proxy: Any, status: int) -> None:
    """Guards: 502/503/504 are retried with back-off (no Retry-After: 0.5 s first) and the image is read."""
    check_transient_status_retried(fault_proxy, status)


def check_transient_status_retried(proxy: Any, status: int) -> None:
    proxy.rules.add(Respond(status), method="GET", path=f"/blobs/{CONFIG}", times=1)
    run = inspect_json(proxy, "fixtures/app1:latest", "--retries", "1")
    _ok(run)
    assert requests_to(proxy, f"/blobs/{CONFIG}") == 2
    assert run.seconds >= 0.5  # the back-off


@pytest.mark.parametrize("status", [502, 503, 504])
def test_persistent_gateway_errors_give_up_after_the_retries(fault_proxy: Any, status: int) -> None:
    """Guards: retries are bounded by `--retries`; then RegistryError with the status, exit 3."""
    fault_proxy.rules.add(Respond(status), method="GET", path=MANIFEST, times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "1")
    _failed(run, "RegistryError")
    assert f"HTTP {status}" in run.err and requests_to(fault_proxy, MANIFEST) == 2


# --------------------------------------------------------------------------------------------- 429


def test_429_with_retry_after_is_honoured(fault_proxy: Any) -> None:
    """Guards: `Retry-After: 1` is waited out (≥ 1 s), then the request is repeated and the image read."""
    check_retry_after_honoured(fault_proxy)


def check_retry_after_honoured(proxy: Any) -> None:
    proxy.rules.add(Respond(429, {"Retry-After": "1"}), method="GET", path=MANIFEST, times=1)
    run = inspect_json(proxy, "fixtures/app1:latest", "--retries", "1")
    _ok(run)
    assert run.seconds >= 1.0 and requests_to(proxy, MANIFEST) == 2


def test_429_without_retry_after_backs_off(fault_proxy: Any) -> None:
    """Guards: a 429 without Retry-After is retried after the exponential back-off (0.5 s first)."""
    fault_proxy.rules.add(Respond(429), method="GET", path=MANIFEST, times=1)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "1")
    _ok(run)
    assert run.seconds >= 0.5 and requests_to(fault_proxy, MANIFEST) == 2


@pytest.mark.parametrize("retry_after", [None, "0"])
def test_429_every_time_is_rate_limited(fault_proxy: Any, retry_after: str | None) -> None:
    """Guards: a registry that keeps answering 429 gets `--retries` more tries, then RateLimited, exit 3,
    with a hint to wait or log in."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    fault_proxy.rules.add(Respond(429, headers), method="GET", path=MANIFEST, times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "1")
    _failed(run, "RateLimited")
    assert requests_to(fault_proxy, MANIFEST) == 2
    assert "log in" in run.err


def test_huge_retry_after_is_capped(fault_proxy: Any) -> None:
    """Guards: `Retry-After: 3600` does not park a CI job for an hour: the wait is capped
    (`RegistrySettings.max_retry_after`, 30 s by default, 0.3 s here)."""
    fault_proxy.rules.add(Respond(429, {"Retry-After": "3600"}), method="GET", path=MANIFEST, times=None)
    settings = RegistrySettings(default=HostSettings(plain_http=True), retries=2, max_retry_after=0.3)
    start = time.monotonic()
    with Session(settings) as session, pytest.raises(errors.RateLimited) as info:
        session.load(fault_proxy.ref("fixtures/app1:latest"))
    assert time.monotonic() - start < 2.0
    assert info.value.retry_after == 3600 and info.value.exit_code == 3


# -------------------------------------------------------------------------------- 401: token expiry


@pytest.fixture
def token_proxy(registry_token: Any) -> Any:
    """A fault proxy in front of the token-auth registry (its realm stays on the issuer)."""
    proxy = ProxyEndpoint(registry_token)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_token_expiring_mid_run_is_renewed(registry_token: Any, token_proxy: Any) -> None:
    """Guards: a bearer token that expires while ociinspect works (the registry answers 401 invalid_token to a
    token the client still had cached) is dropped and renewed once, and the image is read correctly.

    The issuer mints tokens whose `exp` is 58 s in the past; Distribution accepts them for its 60 s leeway,
    i.e. for 1–2 s. The config request is held 2.2 s by the proxy, so it reaches the registry with an expired
    token; the client has cached the token for ≥ 54 s (60 s minimum lifetime), so only the 401 tells it."""
    check_token_renewed(registry_token, token_proxy)


def check_token_renewed(registry: Any, proxy: Any) -> None:
    issuer = registry.issuer
    with restored(issuer, "expires_in"):
        issuer.expires_in = -58
        issuer.clear()
        proxy.rules.add(Stall(2.2), method="GET", path="/blobs/", times=1)
        before = len(registry.access_log())
        run = inspect_json(
            proxy, "team/app1:latest", "-u", registry.username, "--password-stdin", stdin=registry.password
        )
        _ok(run)
        refused = [e for e in registry.access_log()[before:] if e.status == 401 and "/blobs/" in e.uri]
        assert len(refused) == 1, refused
        grants = [r for r in issuer.requests if r.status == 200 and "repository:team/app1:pull" in r.scopes]
        assert len(grants) == 2, grants


def test_token_refused_even_when_fresh_is_an_auth_error_without_a_loop(
    registry_token: Any, token_proxy: Any
) -> None:
    """Guards: when even a freshly fetched token is refused, ociinspect stops (AuthError, exit 3) after one
    renewal instead of looping between the registry and the token service."""
    issuer = registry_token.issuer
    with restored(issuer, "expires_in"):
        issuer.expires_in = -120
        issuer.clear()
        run = inspect_json(
            token_proxy,
            "team/app1:latest",
            "-u",
            registry_token.username,
            "--password-stdin",
            stdin=registry_token.password,
        )
        _failed(run, "AuthError")
        assert len(issuer.requests) <= 2 and requests_to(token_proxy, "/manifests/") <= 3


# ------------------------------------------------------------------------------------ redirects (CDN)


def test_blobs_redirected_to_a_cdn_give_the_same_numbers(fault_proxy: Any, cdn: Any) -> None:
    """Guards: blob redirects to another host (307, as S3/CloudFront-backed registries do) are followed for
    config, Range and stream reads, with `Range` kept, and the numbers are those of the image."""
    fault_proxy.rules.add(Redirect(cdn.url + "{target}"), method="GET", path="/blobs/", times=None)
    _ok(inspect_json(fault_proxy, "fixtures/app1:latest"))
    ranges = [s.headers.get("range") for s in cdn.requests]
    # blobs of at most 64 KiB are read whole by one Range read for their cheap size (docs/sizes.md)
    assert "bytes=0-9663" in ranges and "bytes=0-217" in ranges
    cdn.clear()
    _ok(inspect_json(fault_proxy, "fixtures/app1:latest", "--exact"))
    assert len(cdn.requests) == 3  # config + two layer streams


def test_corrupted_blob_from_the_cdn_is_a_digest_mismatch(fault_proxy: Any, cdn: Any) -> None:
    """Guards: content from the redirect target is verified like content from the registry."""
    fault_proxy.rules.add(Redirect(cdn.url + "{target}"), method="GET", path="/blobs/", times=None)
    cdn.rules.add(Corrupt(), method="GET", path=f"/blobs/{CONFIG}", times=None)
    _failed(inspect_json(fault_proxy, "fixtures/app1:latest"), "DigestMismatch")


def test_redirect_loop_and_dead_cdn_fail_fast(fault_proxy: Any) -> None:
    """Guards: a redirect loop stops after 5 hops (RegistryError) and a redirect to a closed port fails at
    once (ConnectionFailed: refused connections are not retried) — both exit 3, within a second."""
    fault_proxy.rules.add(Redirect(fault_proxy.url + "{target}"), path=f"/blobs/{CONFIG}", times=None)
    run = inspect_json(fault_proxy, "fixtures/app1:latest")
    _failed(run, "RegistryError")
    assert "redirects" in run.err and run.seconds < 1.0
    fault_proxy.clear()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        fault_proxy.rules.add(Redirect(dead + "{target}"), path=f"/blobs/{CONFIG}", times=None)
        run = inspect_json(fault_proxy, "fixtures/app1:latest", "--retries", "3")
    _failed(run, "ConnectionFailed")
    assert run.seconds < 1.0


# ------------------------------------------------------------------ the checks above can fail (mutations)


def test_check_fails_without_status_retries(fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no status retried, the 503 scenario ends in an error: its assertions fail."""
    monkeypatch.setattr(transport_module, "RETRY_STATUSES", frozenset())
    with pytest.raises(AssertionError):
        check_transient_status_retried(fault_proxy, 503)


def test_check_fails_when_retry_after_is_ignored(fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Retry-After ignored (back-off 0.5 s instead of 1 s), the 429 scenario's timing assertion fails."""
    monkeypatch.setattr(transport_module, "_retry_after", lambda response: None)
    with pytest.raises(AssertionError):
        check_retry_after_honoured(fault_proxy)


def test_check_fails_without_a_read_timeout(fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With requests sent without a read timeout, the stall scenario waits the whole stall: it fails.  (Every
    request takes its socket timeouts from ``Transport.timeouts``.)"""
    original = transport_module.Transport.timeouts

    def no_read_timeout(self: transport_module.Transport) -> tuple[float, float]:
        return original(self)[0], 1e9

    monkeypatch.setattr(transport_module.Transport, "timeouts", no_read_timeout)
    with pytest.raises(AssertionError):
        check_stall_times_out(fault_proxy)


def test_check_fails_without_digest_verification(
    fault_proxy: Any, fixture_images: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With content digests not checked (every hash "matches"), the other-manifest and other-layer
    scenarios print another image's numbers: their assertions fail."""
    from ociinspect.model import digest as digest_module

    other = _blob(fixture_images["app2"], EXPECTED["app2"].manifest_digest)
    compute = digest_module.compute

    def lying_compute(data: bytes, algorithm: str = "sha256") -> str:
        return APP1.manifest_digest if data == other else compute(data, algorithm)

    monkeypatch.setattr(digest_module, "compute", lying_compute)
    with pytest.raises(AssertionError):
        check_other_manifest_refused(fault_proxy, fixture_images)
    monkeypatch.undo()
    fault_proxy.clear()
    monkeypatch.setattr(digest_module.DigestHasher, "check", lambda self: None)
    monkeypatch.setattr(digest_module, "verify", lambda *args, **kwargs: None)
    with pytest.raises(AssertionError):
        check_other_layer_refused(fault_proxy, fixture_images, exact=False)


def test_check_fails_when_refused_tokens_are_kept(
    registry_token: Any, token_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a refused token kept in the cache, the expiry scenario ends in AuthError: its assertions fail."""
    from ociinspect.registry.auth import TokenCache

    monkeypatch.setattr(TokenCache, "drop", lambda self, key, token=None: None)
    with pytest.raises(AssertionError):
        check_token_renewed(registry_token, token_proxy)


def test_check_fails_without_body_retries(fault_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a broken-off body not fetched again (the behaviour before d139efa), the reset scenario fails."""
    from ociinspect.registry.client import RegistryClient

    monkeypatch.setattr(RegistryClient, "_fetch", lambda self, what, send, read: read(send()))
    with pytest.raises(AssertionError):
        check_broken_body_retried(fault_proxy, MANIFEST, Reset(after=4))


# ------------------------------------------------------------------------------- total deadline (issue 15)


def test_deadline_ends_a_dripping_ref_and_the_other_is_read(fault_proxy: Any) -> None:
    """Issue 15: base's manifest drips one byte every 0.5 s (each read within --timeout, so only the total
    deadline can end it): that ref is DeadlineExceeded, app1 is read exactly, exit 4.  Bound check: the run ends
    within the deadline plus a generous slack (without a deadline it would take minutes)."""
    fault_proxy.rules.add(Drip(1, 0.5), method="GET", path="/fixtures/base/manifests/latest", times=None)
    run = run_cli(
        "inspect",
        "--no-os",
        "-f",
        "json",
        "--timeout",
        "3",
        "--deadline",
        "4s",
        fault_proxy.ref("fixtures/app1:latest"),
        fault_proxy.ref("fixtures/base:latest"),
    )
    assert run.code == 4, run
    good, bad = run.doc
    assert_image(good, "app1")
    assert bad["error"]["type"] == "DeadlineExceeded", run
    assert "deadline 4s exceeded after" in run.err and "reading the body from" in run.err, run
    assert run.seconds < 4 + 5, run
