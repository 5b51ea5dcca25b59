"""The VM model: the worked examples of docs/vm-model.md recomputed by hand from the data file's numbers,
OS-family identification, and --vm-profile calibration and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ociinspect.analyzers.vm import estimate_fleet, estimate_image
from ociinspect.errors import PolicyError
from ociinspect.model import Descriptor, Image, Layer, SizeEstimate
from ociinspect.osinfo import OsInfo, identify, parse_os_release
from ociinspect.vmprofiles import load_parameters

MB, GB, GIB = 10**6, 10**9, 2**30
UBUNTU = OsInfo("ubuntu", "24.04", "Ubuntu 24.04.1 LTS", "ubuntu", "etc/os-release in layer 0", 0)


def image(ref: str, *layers: tuple[str, int]) -> Image:
    return Image(
        reference=ref,
        digest="sha256:" + "0" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=0,
        platform=None,
        config_descriptor=Descriptor("application/vnd.oci.image.config.v1+json", "sha256:" + "1" * 64, 0),
        config=None,
        layers=tuple(
            Layer(
                i,
                Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", d, size // 3),
                d,
                None,
                SizeEstimate(size, "trailer"),
            )
            for i, (d, size) in enumerate(layers)
        ),
    )


def test_worked_example_one_image_fifty_replicas() -> None:
    """vm-model.md, example 1: Ubuntu 24.04, U = 300 MB, base 78 MB, 50 replicas."""
    p = load_parameters()
    est = estimate_image("app", 300 * MB, UBUNTU, p)
    assert est.base_size == 78 * MB and est.payload == 222 * MB
    assert est.vm_used == 1_622 * MB  # 1.4 GB + 0.222 GB
    assert (est.vm_used_low, est.vm_used_high) == (1_222 * MB, 2_022 * MB)
    assert est.vm_download == int(1_622 * MB / 2.2)  # ≈ 0.737 GB
    assert (est.vm_download_low, est.vm_download_high) == (int(1_222 * MB / 2.8), int(2_022 * MB / 1.5))
    assert est.vm_disk == 8 * GIB  # max(8 GiB, 1.622 GB × 1.3)
    img = image("app", ("sha256:" + "a" * 64, 300 * MB))
    fleet = estimate_fleet([img], [est], p, replicas=50)
    assert fleet.containers == 50 and fleet.containers_size == 300 * MB
    assert fleet.vms_used_size == 50 * 1_622 * MB  # 81.1 GB
    assert fleet.ratio == pytest.approx(270.33, abs=0.01)
    assert fleet.disk_ratio == pytest.approx(50 * 8 * GIB / (300 * MB))  # ≈ 1432×


def test_worked_example_fifty_services_on_debian_slim() -> None:
    """vm-model.md, example 2: 50 services on a 75 MB debian base, each adding 40 MB; base layers detected."""
    p = load_parameters()
    debian = OsInfo(
        "debian", "12", "Debian GNU/Linux 12 (bookworm)", "debian", "etc/os-release in layer 0", 0
    )
    base = ("sha256:" + "b" * 64, 75 * MB)
    images = [image(f"svc{i}", base, (f"sha256:{i:064x}", 40 * MB)) for i in range(50)]
    ests = [
        estimate_image(img.reference, 115 * MB, debian, p, base_size=75 * MB, base_layers=1) for img in images
    ]
    assert {e.payload for e in ests} == {40 * MB}
    assert ests[0].vm_used == 740 * MB  # 0.7 GB + 40 MB
    fleet = estimate_fleet(images, ests, p)
    assert fleet.containers_size == 75 * MB + 50 * 40 * MB  # 2.075 GB: the base is stored once
    assert fleet.vms_used_size == 50 * 740 * MB  # 37 GB
    assert fleet.ratio == pytest.approx(37_000 / 2_075)  # ≈ 17.8×


def test_writable_layer_and_headroom_from_a_calibration_file(tmp_path: Path) -> None:
    cal = tmp_path / "cal.toml"
    cal.write_text("[global]\nheadroom = 1.0\nwritable_layer_mb = 10\n[families.ubuntu]\ndisk_gib = 1\n")
    p = load_parameters(str(cal))
    assert p.origin == str(cal) and p.headroom == 1.0
    est = estimate_image("app", 300 * MB, UBUNTU, p)
    assert est.vm_disk == 2 * 1_622 * MB  # max(1 GiB, 1.622 GB × 2)
    fleet = estimate_fleet([image("app", ("sha256:" + "a" * 64, 300 * MB))], [est], p, replicas=3)
    assert fleet.containers_size == 300 * MB + 3 * 10 * MB
    assert p.profile("debian").vm_os.central == 0.7 * GB  # untouched families keep the built-in numbers


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not toml [", "not valid TOML"),
        ("[families.ubuntu]\nvm_os_gb = { low = 2, central = 1, high = 3 }\n", "low <= central <= high"),
        ("[families.ubuntu]\ncontainer_base_mb = -1\n", "non-negative"),
        ("fallback_family = 'nope'\n", "fallback_family"),
    ],
)
def test_bad_calibration_files(tmp_path: Path, content: str, match: str) -> None:
    cal = tmp_path / "bad.toml"
    cal.write_text(content)
    with pytest.raises(PolicyError, match=match) as exc:
        load_parameters(str(cal))
    assert exc.value.exit_code == 2


def test_missing_calibration_file() -> None:
    with pytest.raises(PolicyError, match="No such file") as exc:
        load_parameters("/nonexistent/cal.toml")
    assert exc.value.hint and "--vm-profile" in exc.value.hint


def test_every_profile_has_sources_and_sane_numbers() -> None:
    p = load_parameters()
    for name, prof in p.profiles.items():
        assert prof.sources, name
        assert prof.derivation and prof.disk_source, name
        assert 0 < prof.vm_os.low <= prof.vm_os.central <= prof.vm_os.high, name
    assert set(p.sources) >= {"download_ratio", "headroom", "writable_layer"}


@pytest.mark.parametrize(
    ("files", "present", "config_os", "family", "os_id"),
    [
        ({"etc/os-release": b'ID=debian\nVERSION_ID="12"\n'}, frozenset(), "linux", "debian", "debian"),
        (
            {"etc/os-release": b'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'},
            frozenset(),
            "linux",
            "ubuntu",
            "ubuntu",
        ),
        (
            {"etc/os-release": b"ID=alpine\nVERSION_ID=3.20.3\n", "etc/alpine-release": b"3.20.3\n"},
            frozenset(),
            "linux",
            "alpine",
            "alpine",
        ),
        ({"usr/lib/os-release": b"ID=fedora\nVERSION_ID=40\n"}, frozenset(), "linux", "fedora", "fedora"),
        (
            {"etc/os-release": b'ID="rocky"\nID_LIKE="rhel centos fedora"\n'},
            frozenset(),
            "linux",
            "rhel",
            "rocky",
        ),
        (
            {"etc/os-release": b'PRETTY_NAME="Distroless"\nID="debian"\n'},
            frozenset(),
            "linux",
            "debian-minimal",
            "debian",
        ),
        (
            {"etc/os-release": b"ID=debian\n"},
            frozenset({"var/lib/dpkg/status.d"}),
            "linux",
            "debian-minimal",
            "debian",
        ),
        ({"etc/os-release": b"ID=nixos\n"}, frozenset(), "linux", "static", "nixos"),
        ({"etc/alpine-release": b"3.19.1\n"}, frozenset(), "linux", "alpine", "alpine"),
        ({}, frozenset(), "linux", "static", None),
        ({}, frozenset(), "windows", "windows-core", "windows"),
    ],
)
def test_identify(
    files: dict[str, bytes], present: frozenset[str], config_os: str, family: str, os_id: str | None
) -> None:
    info = identify(files, present=present, config_os=config_os, layer_index=0)
    assert (info.family, info.id) == (family, os_id)
    assert info.evidence


def test_parse_os_release_quoting() -> None:
    fields = parse_os_release(
        'NAME="Debian GNU/Linux"\nVERSION_ID=\'12\'\n# comment\nBROKEN\nPRETTY_NAME="A \\"quoted\\" name"\n'
    )
    assert fields == {"NAME": "Debian GNU/Linux", "VERSION_ID": "12", "PRETTY_NAME": 'A "quoted" name'}
