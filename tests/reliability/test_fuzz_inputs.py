"""Short fuzz runs in the normal suite (a few seconds): every hostile-input target of
``reliability.fuzz_targets``, a few hundred deterministic cases each. The long run (≥ 100k cases) is
``python tests/bench/fuzz_long.py``."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reliability import fuzz_targets as ft


@ft.short_settings(300)
@given(ft.references())
def test_fuzz_references(text: str) -> None:
    ft.tally("references").run(lambda: ft.reference_case(text))


@ft.short_settings(200)
@given(ft.image_cases())
def test_fuzz_manifests_and_indexes(case: ft.ImageCase) -> None:
    ft.tally("manifests/indexes").run(lambda: ft.image_case(case))


@ft.short_settings(200)
@given(ft.config_documents())
def test_fuzz_configs(data: bytes) -> None:
    ft.tally("configs").run(lambda: ft.config_case(data))


@ft.short_settings(100)
@given(ft.docker_archives(), st.sampled_from(["cheap", "exact"]))
def test_fuzz_docker_archive_manifest_json(archive: tuple[dict[str, bytes], str], mode: str) -> None:
    ft.tally("docker-archive").run(lambda: ft.archive_case(*archive, mode))


@ft.short_settings(100)
@given(ft.layouts())
def test_fuzz_oci_layout_index_json(layout: tuple[dict[str, bytes], str]) -> None:
    ft.tally("oci layout").run(lambda: ft.layout_case(*layout))


@ft.short_settings(300)
@given(ft.tar_inputs())
def test_fuzz_tar_headers(args: Any) -> None:
    ft.run_tar(args)


@ft.short_settings(300)
@given(ft.compression_inputs())
def test_fuzz_gzip_zstd_streams(args: Any) -> None:
    ft.run_compression(args)


@ft.short_settings(300)
@given(ft.hostile_headers())
def test_fuzz_number_headers_read_ascii_digits_only(value: str) -> None:
    ft.run_headers(value)


@ft.short_settings(200)
@given(ft.hostile_references())
def test_fuzz_references_with_hostile_names_and_tags(text: str) -> None:
    ft.tally("hostile references").run(lambda: ft.reference_case(text))


@ft.short_settings(60)
@given(ft.hostile_images())
def test_fuzz_hostile_config_values_and_paths_in_every_output(case: ft.HostileImage) -> None:
    ft.run_render(case)
