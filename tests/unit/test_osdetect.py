"""Base-OS detection reads the base layer only as far as it must: it stops at a regular /etc/os-release, or at
the end of etc/ when os-release is a symlink into usr/ (Debian, Ubuntu) but etc/ has other release files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.build import file_entry, image, layer, make_tar, pseudo_random, symlink_entry, write_layout
from ociinspect.content.osdetect import detect_os
from ociinspect.model.osinfo import identify
from ociinspect.session import Session
from ociinspect.sources.base import Source

BIG = 4 << 20  # a usr/ payload large enough that reading it would show


class Counting:
    """Wraps a source and counts the blob bytes handed out by open_blob."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.streamed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        with self.inner.open_blob(digest, size=size) as chunks:

            def counted() -> Iterator[bytes]:
                for chunk in chunks:
                    self.streamed += len(chunk)
                    yield chunk

            yield counted()


def rootfs(tmp_path: Path, name: str, etc: list) -> Path:  # type: ignore[type-arg]
    files = [
        symlink_entry("bin", "usr/bin"),
        *etc,
        file_entry("usr/lib/big.so", pseudo_random(name, BIG), 0o755),
        file_entry("usr/lib/os-release", f'ID={name}\nVERSION_ID="1"\nPRETTY_NAME="{name} from usr/lib"\n'),
    ]
    built = image(name, [layer(make_tar(files))], [{"created_by": "ADD rootfs /"}], {"Cmd": ["/bin/sh"]})
    return write_layout(tmp_path / name, {name: built}, {name: "latest"})


def detect(path: Path) -> tuple[object, int, int]:
    with Session() as s, s.source(f"oci:{path}:latest") as src:
        img = s.load(f"oci:{path}:latest")
        counting = Counting(src)
        info = detect_os(counting, img)  # type: ignore[arg-type]
        return info, counting.streamed, img.layers[0].size


def test_debian_style_symlink_stops_at_the_end_of_etc(tmp_path: Path) -> None:
    etc = [
        file_entry("etc/debian_version", "12.5\n"),
        symlink_entry("etc/os-release", "../usr/lib/os-release"),
    ]
    info, streamed, size = detect(rootfs(tmp_path, "debianish", etc))
    assert (info.id, info.version_id, info.family) == ("debian", "12", "debian")  # type: ignore[attr-defined]
    assert "etc/debian_version" in info.evidence  # type: ignore[attr-defined]
    assert streamed < size / 4, f"read {streamed} of {size} compressed bytes"


def test_ubuntu_style_lsb_release(tmp_path: Path) -> None:
    etc = [
        file_entry("etc/debian_version", "trixie/sid\n"),
        file_entry(
            "etc/lsb-release",
            'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_DESCRIPTION="Ubuntu 24.04.1 LTS"\n',
        ),
        symlink_entry("etc/os-release", "../usr/lib/os-release"),
    ]
    info, streamed, size = detect(rootfs(tmp_path, "ubuntuish", etc))
    assert (info.id, info.version_id, info.family) == ("ubuntu", "24.04", "ubuntu")  # type: ignore[attr-defined]
    assert streamed < size / 4


def test_regular_os_release_stops_right_there(tmp_path: Path) -> None:
    etc = [file_entry("etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\n")]
    info, streamed, size = detect(rootfs(tmp_path, "alpineish", etc))
    assert info.id == "alpine" and streamed < size / 4  # type: ignore[attr-defined]


def test_only_usr_lib_os_release_reads_on_until_found(tmp_path: Path) -> None:
    etc = [symlink_entry("etc/os-release", "../usr/lib/os-release")]
    info, streamed, size = detect(rootfs(tmp_path, "fedora", etc))
    assert info.id == "fedora" and "usr/lib/os-release" in info.evidence  # type: ignore[attr-defined]
    assert streamed > size / 2  # it had to go deep: correct, and documented


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("etc/redhat-release", "Red Hat Enterprise Linux release 9.3 (Plow)\n", ("rhel", "9.3", "rhel")),
        (
            "etc/system-release",
            "Amazon Linux release 2023.5.20240805 (Amazon Linux)\n",
            ("amzn", "2023.5.20240805", "amazon"),
        ),
        ("etc/redhat-release", "Fedora release 40 (Forty)\n", ("fedora", "40", "fedora")),
    ],
)
def test_release_files(path: str, text: str, expected: tuple[str, str, str]) -> None:
    info = identify({path: text.encode()}, layer_index=0)
    assert (info.id, info.version_id, info.family) == expected


class Expiring(Counting):
    """A source whose blob reads fail as when the command's total deadline passes mid-read."""

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        from ociinspect.errors import DeadlineExceeded

        raise DeadlineExceeded("reading a layer: deadline 1s exceeded after 1.0s")
        yield iter(())  # pragma: no cover


def test_deadline_during_os_detection_is_not_swallowed(tmp_path: Path) -> None:
    """An unreadable base layer gives an "unknown OS" note, but a passed deadline must end the command."""
    from ociinspect.errors import DeadlineExceeded

    path = rootfs(tmp_path, "deb", [file_entry("etc/os-release", b'ID=debian\nVERSION_ID="12"\n')])
    with Session() as s, s.source(f"oci:{path}:latest") as src:
        img = s.load(f"oci:{path}:latest")
        with pytest.raises(DeadlineExceeded):
            detect_os(Expiring(src), img)  # type: ignore[arg-type]
