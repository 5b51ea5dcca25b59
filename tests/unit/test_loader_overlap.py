"""Issue 14, target 3: the loader reads a registry image's config and every layer's size evidence (gzip head and
trailer Range reads) at once, as soon as the manifest is chosen — the layers' cheap evidence does not depend on
the config — and still raises the error the serial order raised (the config's first, then the first failing
layer's), with no read left running behind it, and reads nothing more than before.

No timing: each test makes one read wait (at most ``WAIT`` seconds, a bound, not a measure) for another to
start or to fail; the serial code never started the other, so there the wait runs out and the test fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from audit_fixtures import build_image

from ociinspect.errors import RegistryError
from ociinspect.image import loader, sizes
from ociinspect.image.loader import LoadOptions
from ociinspect.sources.memory import MemorySource

WAIT = 20.0


def _image() -> tuple[dict[str, bytes], bytes, str, list[Any]]:
    """Blobs, manifest, config digest and layer descriptors of a 3-layer gzip image: a 100 KiB base (head +
    trailer reads), a small app layer and a small extra layer (one whole read each)."""
    built = build_image("overlap", "ubuntu", extra_size=3000)
    src = MemorySource(built.blobs, tags={"latest": built.manifest})
    facts = loader.manifest_facts(src.root(), "test")
    assert facts.config is not None and len(facts.layers) == 3
    assert facts.layers[0].size > sizes.HEAD_BYTES >= max(d.size for d in facts.layers[1:])
    return built.blobs, built.manifest, facts.config.digest, list(facts.layers)


class Gated(MemorySource):
    """A registry-like MemorySource whose config read and layer range reads call hooks first."""

    def __init__(self, blobs: dict[str, bytes], manifest: bytes) -> None:
        super().__init__(
            blobs, tags={"latest": manifest}, kind="registry", reference="docker://r.test/a/b:latest"
        )
        self.on_config: Callable[[], None] = lambda: None
        self.on_range: Callable[[str, int], None] = lambda digest, start: None
        self.events: list[str] = []
        self.events_lock = threading.Lock()

    def note(self, event: str) -> None:
        with self.events_lock:
            self.events.append(event)

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        self.on_config()
        self.note("config answered")
        return super().blob(digest, size=size, max_bytes=max_bytes)

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        self.note(f"range {digest[:15]} {start}")
        self.on_range(digest, start)
        return super().blob_range(digest, start, end)


def _expected_ranges(layers: list[Any]) -> set[tuple[str, int, int]]:
    out = set()
    for d in layers:
        if d.size <= sizes.HEAD_BYTES:
            out.add((d.digest, 0, d.size - 1))
        else:
            out |= {(d.digest, 0, sizes.HEAD_BYTES - 1), (d.digest, d.size - 8, d.size - 1)}
    return out


def test_every_layer_range_is_read_before_the_config_is_answered() -> None:
    blobs, manifest, _, layers = _image()
    serial = loader.load(MemorySource(blobs, tags={"latest": manifest}), LoadOptions())
    src = Gated(blobs, manifest)
    all_asked = threading.Event()

    def on_range(digest: str, start: int) -> None:
        with src.events_lock:
            asked = sum(1 for e in src.events if e.startswith("range"))
        if asked == len(_expected_ranges(layers)):
            all_asked.set()

    met: list[bool] = []
    src.on_range = on_range
    src.on_config = lambda: met.append(all_asked.wait(WAIT))
    image = loader.load(src, LoadOptions())
    assert met == [True]  # old code: False (the config was read before any range)
    assert src.events.index("config answered") == len(src.events) - 1
    # the same figures, and the same reads: the evidence once per layer, the config once
    assert [layer.uncompressed for layer in image.layers] == [layer.uncompressed for layer in serial.layers]
    assert sorted(src.reads.ranges) == sorted(_expected_ranges(layers))
    assert len(src.reads.blobs) == 1 and not src.reads.streams


def test_on_chosen_gets_the_subject_before_the_config_is_read() -> None:
    blobs, manifest, _, _ = _image()
    src = Gated(blobs, manifest)
    chosen: list[str] = []
    src.on_config = lambda: src.note(f"config asked after {chosen}")
    image = loader.load(src, LoadOptions(), on_chosen=chosen.append)
    assert chosen == [image.digest]
    assert f"config asked after {[image.digest]}" in src.events


def test_a_config_error_wins_over_a_layer_error_that_came_first() -> None:
    """The config and a layer both fail, the layer first in time: the error raised is the config's (the one the
    serial code raised), and no layer read is still running when it is raised."""
    blobs, manifest, config_digest, layers = _image()
    src = Gated(blobs, manifest)
    layer_failed = threading.Event()
    running: list[int] = []
    lock = threading.Lock()

    def on_range(digest: str, start: int) -> None:
        if digest == layers[2].digest:
            layer_failed.set()
            raise RegistryError("layer 2 is broken")
        with lock:
            running.append(1)
        try:
            assert layer_failed.wait(WAIT)
        finally:
            with lock:
                running.pop()

    def on_config() -> None:
        assert layer_failed.wait(WAIT)  # the layer's error came first
        raise RegistryError(f"config {config_digest} is broken")

    src.on_range, src.on_config = on_range, on_config
    with pytest.raises(RegistryError) as caught:
        loader.load(src, LoadOptions())
    assert caught.value.message == f"config {config_digest} is broken"
    assert running == []  # every read started by the load ended before it raised


def test_the_first_layers_error_wins_over_a_later_layers_that_came_first() -> None:
    blobs, manifest, _, layers = _image()
    src = Gated(blobs, manifest)
    later_failed = threading.Event()

    def on_range(digest: str, start: int) -> None:
        if digest == layers[2].digest:
            later_failed.set()
            raise RegistryError("layer 2 is broken")
        if digest == layers[1].digest:
            assert later_failed.wait(WAIT)
            raise RegistryError("layer 1 is broken")

    src.on_range = on_range
    with pytest.raises(RegistryError) as caught:
        loader.load(src, LoadOptions())
    assert caught.value.message == "layer 1 is broken"


@pytest.mark.parametrize("mode", ["cheap", "exact", "none"])
@pytest.mark.parametrize("workers", [1, 8])
def test_the_figures_do_not_depend_on_the_overlap(mode: str, workers: int) -> None:
    """Every mode, serial (one worker) or parallel: the same figures as layer-by-layer :func:`sizes.estimate`
    after the config, the serial order of the old loader."""
    blobs, manifest, _, layers = _image()
    image = loader.load(Gated(blobs, manifest), LoadOptions(sizes=mode, workers=workers))  # type: ignore[arg-type]
    plain = MemorySource(blobs, tags={"latest": manifest})
    assert image.config is not None
    expected = [
        sizes.estimate(plain, d, diff_id=image.config.diff_ids[i], mode=mode)  # type: ignore[arg-type]
        for i, d in enumerate(layers)
    ]
    assert [layer.uncompressed for layer in image.layers] == expected
