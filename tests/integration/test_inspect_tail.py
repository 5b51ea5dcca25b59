"""Issue 14, target 3: what ``inspect`` adds to an image — the referrer count and the VM model's parameters — is
under way before the base OS is looked for (the count asked as soon as the image's manifest is chosen, the
parameters read from the start), not after every image and its OS; with the same requests and the same output.

No timing: the base-OS step is made to wait (at most 20 s) until the referrer request and the parameter loading
have started; the old code started neither before every base OS was known, so there the wait runs out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from harness.faultproxy import Respond

import ociinspect.analyzers.vm_profiles as vm_profiles
from ociinspect import verbs
from ociinspect.cli import main
from ociinspect.session import Session

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

WAIT_S = 20.0  # a bound on the wait, not a timed assertion: the new code starts both at once


def _inspect(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(["inspect", *argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode(errors="replace")


def _signalling(fn: Callable[..., Any], started: threading.Event, threads: list[str]) -> Callable[..., Any]:
    """``fn``, noting the thread of each call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        started.set()
        return fn(*args, **kwargs)

    return wrapper


def test_referrers_and_vm_parameters_start_before_the_base_os_is_known(
    fault_proxy: Any, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"docker://{fault_proxy.host}/fixtures/demo:latest"
    code, expected, _ = _inspect(
        capsysbinary, ref, "-f", "json"
    )  # the output as the code reads it unhindered
    assert code == 0
    requests_before = len(fault_proxy.requests)

    counted, params = threading.Event(), threading.Event()
    count_threads: list[str] = []
    param_threads: list[str] = []
    monkeypatch.setattr(verbs, "referrer_count", _signalling(verbs.referrer_count, counted, count_threads))
    monkeypatch.setattr(
        vm_profiles, "load_parameters", _signalling(vm_profiles.load_parameters, params, param_threads)
    )
    seen_at_os: list[tuple[bool, bool]] = []
    detect_os = Session._detect_os

    def waiting_detect_os(self: Session, *args: Any) -> Any:
        seen_at_os.append((counted.wait(WAIT_S), params.wait(WAIT_S)))
        return detect_os(self, *args)

    monkeypatch.setattr(Session, "_detect_os", waiting_detect_os)
    code, out, err = _inspect(capsysbinary, ref, "-f", "json")
    assert code == 0, err
    assert seen_at_os == [(True, True)]  # old code: (False, False) after the waits ran out
    assert out == expected  # the same document, byte for byte
    assert len(count_threads) == 1 and len(param_threads) == 1
    assert threading.current_thread().name not in count_threads + param_threads
    # the same requests as before: one referrers request (+ the tag-schema fallback on this registry)
    asked = [s.target for s in fault_proxy.requests[requests_before:]]
    assert sum(1 for t in asked if "/referrers/" in t) == 1
    assert sum(1 for t in asked if "/manifests/sha256-" in t) == 1
    assert json.loads(out)["referrers"] == 0


def test_a_reference_that_cannot_be_resolved_asks_no_referrers(
    fault_proxy: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The referrer count is asked once the image's manifest is chosen: a manifest that cannot be read (HTTP
    500), or an index without the platform asked, fails the ref before that, and no referrers request goes out."""
    fault_proxy.rules.add(Respond(500), path="/demo/manifests/latest", times=None)
    ref = f"docker://{fault_proxy.host}/fixtures/demo:latest"
    code, _, err = _inspect(capsysbinary, ref, "-f", "json", "--retries", "0")
    assert code != 0 and "HTTP 500" in err
    multi = f"docker://{fault_proxy.host}/fixtures/multi:latest"
    code, _, err = _inspect(capsysbinary, multi, "-f", "json", "--platform", "linux/s390x")
    assert code != 0 and "s390x" in err
    assert not any(
        "/referrers/" in s.target or "/manifests/sha256-" in s.target for s in fault_proxy.requests
    )


def test_an_image_whose_config_fails_shows_only_the_configs_error(
    fault_proxy: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """An image whose config cannot be read (HTTP 500) after its manifest was chosen: its referrers were asked
    meanwhile (once), but nothing about them shows — the output is the error document of the config's error,
    with the exit code and stderr it had when the count was asked only of images that were read."""
    fault_proxy.rules.add(Respond(500), path="/blobs/", times=None)
    ref = f"docker://{fault_proxy.host}/fixtures/demo:latest"
    code, out, err = _inspect(capsysbinary, ref, "-f", "json", "--retries", "0")
    assert code != 0 and "HTTP 500" in err and "referrers" not in err
    doc = json.loads(out)
    assert set(doc) == {"schema_version", "reference", "error"}
    assert "fetching blob" in doc["error"]["message"] and "HTTP 500" in doc["error"]["message"]
    assert sum(1 for s in fault_proxy.requests if "/referrers/" in s.target) == 1


def test_many_refs_of_one_image_ask_its_referrers_once(
    seeded_registry: Any,
    fixture_images: Any,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three refs naming one image (tag, tag again, digest): one count for the subject, the same in every
    document; a local image beside them: no count, no request."""
    calls: list[str] = []
    count = verbs.referrer_count

    def counting(session: Session, reference: Any, subject: str) -> int:
        calls.append(subject)  # a count asked of the registry (the documents then read it from the counts)
        return count(session, reference, subject)

    monkeypatch.setattr(verbs, "referrer_count", counting)
    tag = f"docker://{seeded_registry.host}/fixtures/demo:latest"
    pinned = (
        f"docker://{seeded_registry.host}/fixtures/demo@{seeded_registry.digests['fixtures/demo:latest']}"
    )
    local = f"oci:{fixture_images['demo']}:latest"
    code, out, err = _inspect(capsysbinary, "--no-os", "-f", "json", tag, local, tag, pinned)
    assert code == 0, err
    docs = json.loads(out)
    assert [d.get("referrers") for d in docs] == [0, None, 0, 0]
    assert len(calls) == 1


def test_every_platform_of_an_index_shares_one_referrer_count(
    seeded_registry: Any, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--all-platforms`` of an index: the count is the index's (the subject of every platform), asked once."""
    subjects: list[str] = []
    count = verbs.referrer_count

    def counting(session: Session, reference: Any, subject: str) -> int:
        subjects.append(subject)
        return count(session, reference, subject)

    monkeypatch.setattr(verbs, "referrer_count", counting)
    ref = f"docker://{seeded_registry.host}/fixtures/multi:latest"
    code, out, err = _inspect(capsysbinary, "--all-platforms", "-f", "json", ref)
    assert code == 0, err
    docs = json.loads(out)
    assert len(docs) >= 2 and len({d["index_digest"] for d in docs}) == 1
    assert subjects == [docs[0]["index_digest"]]
    assert {d["referrers"] for d in docs} == {0}
