"""Put fixture images into registries and archives with independent clients: skopeo and oras-py."""

from __future__ import annotations

import functools
import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


class SeedError(RuntimeError):
    pass


def skopeo_available() -> bool:
    return shutil.which("skopeo") is not None


class Skopeo:
    """``skopeo copy`` with our own signature policy (no dependence on /etc/containers) and a timeout."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.policy = workdir / "policy.json"
        self.policy.write_text(json.dumps(POLICY))
        self.auth_file = workdir / "auth.json"  # empty: never pick up the user's credentials
        self.auth_file.write_text('{"auths": {}}')

    def run(self, *args: str, timeout: float = 60.0) -> str:
        command = ["skopeo", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SeedError(f"{' '.join(command)} timed out after {timeout} s") from exc
        if done.returncode != 0:
            raise SeedError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def copy(self, source: str, dest: str, *options: str) -> None:
        self.run(
            "copy",
            "--quiet",
            "--policy",
            str(self.policy),
            "--authfile",
            str(self.auth_file),
            *options,
            source,
            dest,
        )

    def inspect_raw(self, ref: str) -> bytes:
        return self.run("inspect", "--raw", ref).encode()


def dest_options(
    *,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
    preserve_digests: bool = True,
) -> list[str]:
    """Options for a ``docker://`` destination. ``--preserve-digests`` matters: without it skopeo 1.9
    gzips an uncompressed (``tar``) layer on the way to a registry, changing the manifest digest."""
    options = [f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
    if preserve_digests:
        options.append("--preserve-digests")
    if creds:
        options.append(f"--dest-creds={creds[0]}:{creds[1]}")
    if cert_dir:
        options.append(f"--dest-cert-dir={cert_dir}")
    return options


def cert_dir_for(ca_file: Path, workdir: Path) -> Path:
    """A directory holding only ``ca.crt``: skopeo's cert dir treats every *.key as a client key."""
    directory = workdir / "skopeo-certs"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_file, directory / "ca.crt")
    return directory


@functools.cache
def _oras_registry_class() -> Any:
    """oras-py's Registry without its retry decorator (it sleeps 131 s before reporting any failure)."""
    import oras.provider

    logging.getLogger("oras").addHandler(logging.NullHandler())
    logging.getLogger("oras").propagate = False

    class NoRetryRegistry(oras.provider.Registry):  # type: ignore[misc]
        do_request = oras.provider.Registry.do_request.__wrapped__

    return NoRetryRegistry


def oras_push_manifest(
    host: str, repo_tag: str, layout: Path, manifest_digest: str, timeout: float = 30.0
) -> None:
    """Push one manifest of ``layout`` (plain HTTP) with oras-py: its blobs through ``upload_blob``, then
    the manifest's exact bytes through ``do_request`` PUT (``upload_manifest`` would re-serialise the JSON
    and change the digest)."""
    registry = _oras_registry_class()(hostname=host, insecure=True)
    registry.session.request = functools.partial(registry.session.request, timeout=timeout)
    container = registry.get_container(f"{host}/{repo_tag}")
    blob_dir = layout / "blobs" / "sha256"
    raw = (blob_dir / manifest_digest.split(":", 1)[1]).read_bytes()
    manifest = json.loads(raw)
    for desc in [manifest["config"], *manifest.get("layers", [])]:
        response = registry.upload_blob(str(blob_dir / desc["digest"].split(":", 1)[1]), container, desc)
        if response.status_code not in (200, 201):
            raise SeedError(
                f"oras upload_blob {desc['digest']} -> HTTP {response.status_code}: {response.text}"
            )
    response = registry.do_request(
        f"{registry.prefix}://{container.manifest_url()}",
        "PUT",
        data=raw,
        headers={"Content-Type": manifest["mediaType"]},
    )
    if response.status_code != 201:
        raise SeedError(f"oras manifest PUT {repo_tag} -> HTTP {response.status_code}: {response.text}")


def served_digest(url: str, repo: str, tag: str, *, verify: str | bool = True, auth: Any = None) -> str:
    """The ``Docker-Content-Digest`` the registry answers for a manifest HEAD with the full Accept list."""
    response = requests.head(
        f"{url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=(5, 30),
        verify=verify,
        auth=auth,
    )
    if response.status_code != 200:
        raise SeedError(f"HEAD {repo}:{tag} -> HTTP {response.status_code}")
    return response.headers["Docker-Content-Digest"]


def split_ref(repo_tag: str) -> tuple[str, str]:
    repo, _, tag = repo_tag.rpartition(":")
    return repo, tag


def copy_all(skopeo: Skopeo, jobs: Sequence[tuple[str, str, Sequence[str]]]) -> None:
    for source, dest, options in jobs:
        skopeo.copy(source, dest, *options)
