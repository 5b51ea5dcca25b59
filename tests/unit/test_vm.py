"""The VM model: the worked examples of docs/vm-model.md recomputed by hand from the data file's numbers,
OS-family identification, and --vm-profile calibration and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ociinspect.analyzers.vm import estimate_fleet, estimate_image
from ociinspect.analyzers.vm_profiles import load_parameters
from ociinspect.errors import PolicyError
from ociinspect.model.image import Descriptor, Image, Layer, SizeEstimate
from ociinspect.model.osinfo import OsInfo, identify, parse_os_release

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


# ------------------------------------------------------------------------------ issue 10 §3: unknown sizes, artifacts


def _container(ref: str, *sizes: SizeEstimate) -> Image:
    import dataclasses

    from ociinspect.model.image import ImageConfig

    img = image(ref, *((f"sha256:{ref[-1] * 63}{i}", 3 * MB) for i in range(len(sizes))))
    layers = tuple(dataclasses.replace(lyr, uncompressed=s) for lyr, s in zip(img.layers, sizes, strict=True))
    return dataclasses.replace(img, config=ImageConfig(os="linux"), layers=layers)


AMBIGUOUS = SizeEstimate(None, "unknown", "ambiguous: gzip trailer", candidates=(100 * MB, 100 * MB + 2**32))


def test_unknown_and_ambiguous_sizes_give_no_vm_figures_and_say_why() -> None:
    from ociinspect.analyzers.vm import estimate_for, size_basis, unknown_sizes

    p = load_parameters()
    known = _container("oci:/x:a", SizeEstimate(50 * MB, "trailer"), SizeEstimate(5 * MB, "streamed"))
    ambiguous = _container("oci:/x:b", SizeEstimate(50 * MB, "trailer"), AMBIGUOUS)
    unknown = _container("oci:/x:c", SizeEstimate(None, "unknown", "zstd frame header has no content size"))
    exact = _container("oci:/x:d", SizeEstimate(5 * MB, "streamed"), SizeEstimate(7 * MB, "exact"))
    assert unknown_sizes(known) is None and size_basis(known) == "cheap" and size_basis(exact) == "exact"
    assert estimate_for(ambiguous, UBUNTU, p) is None and size_basis(ambiguous) == "unknown"
    why = unknown_sizes(ambiguous) or ""
    assert f"layer(s) 1 (ambiguous: {100 * MB} or {100 * MB + 2**32} bytes)" in why and "--exact" in why
    assert "zstd frame header has no content size" in (unknown_sizes(unknown) or "")


def test_vm_document_and_text_mark_unknown_images_partial_fleet_and_artifacts() -> None:
    from ociinspect.analyzers.vm import estimate_for
    from ociinspect.reports.data import vm_document
    from ociinspect.reports.text import vm_text

    p = load_parameters()
    known = _container("oci:/x:a", SizeEstimate(300 * MB, "trailer"))
    ambiguous = _container("oci:/x:b", AMBIGUOUS)
    artifact = image("oci:/x:sbom", ("sha256:" + "9" * 64, 3000))  # config None: an artifact
    est = estimate_for(known, UBUNTU, p)
    assert est is not None and artifact.is_artifact and estimate_for(artifact, UBUNTU, p) is None
    fleet = estimate_fleet([known], [est], p, replicas=2)
    doc = vm_document(
        [est],
        fleet,
        p,
        bases=["cheap"],
        unknown=[(ambiguous, UBUNTU, "why: rerun with --exact")],
        artifacts=[artifact],
    )
    assert doc["images"][0]["container_size_basis"] == "cheap"
    (u,) = doc["unknown_images"]
    assert (u["reference"], u["container_size"], u["container_size_basis"]) == ("oci:/x:b", None, "unknown")
    assert doc["fleet"]["complete"] is False and doc["fleet"]["left_out"] == ["oci:/x:b"]
    assert doc["fleet"]["containers"] == 2  # the unknown image is not counted as if it weighed 0
    (a,) = doc["artifacts"]
    assert a["uncompressed_size"] is None and a["compressed_size"] == 1000 and "not applicable" in a["note"]
    text = vm_text(doc)
    assert "Fleet totals are PARTIAL" in text and "oci:/x:b: no VM figures: why: rerun with --exact" in text
    assert "oci:/x:sbom: an artifact" in text and "uncompressed not applicable" in text
    complete = vm_document([est], fleet, p)
    assert complete["fleet"]["complete"] is True and "PARTIAL" not in vm_text(complete)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[global]\nheadrom = 0.5\n", r"line 2: unknown key global\.headrom"),
        ("[globals]\nheadroom = 0.5\n", r"line 1: unknown table globals"),
        ("[families.debian]\ndisk_gb = 8\n", r"line 2: unknown key families\.debian\.disk_gb"),
        (
            "[families.debian.vm_os_gb]\nlow = 1\ncentral = 2\nhigh = 3\nmid = 2\n",
            r"line 5: unknown key .*\.mid",
        ),
    ],
)
def test_unknown_profile_keys_are_errors_with_line_and_did_you_mean(
    tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(content)
    with pytest.raises(PolicyError, match=match) as info:
        load_parameters(str(path))
    assert info.value.exit_code == 2 and info.value.hint
    if "headrom" in content or "globals" in content or "disk_gb" in content:
        assert "did you mean" in info.value.hint
