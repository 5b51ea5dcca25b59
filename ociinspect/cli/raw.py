"""``manifest``, ``config``, ``digest``, ``tags``, ``repos``, ``blob``, ``referrers``: the everyday verbs.

Thin commands over :mod:`ociinspect.verbs`.  Raw bytes (manifest, config, blob) go to stdout unchanged, or to
``-o FILE`` through a temporary file next to FILE that is renamed only once the bytes are verified.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

import click

from ociinspect import verbs
from ociinspect.cli import cli
from ociinspect.cli.options import (
    DEFAULT_DEADLINES,
    HELP,
    RegistryAccess,
    atomic_output,
    output_option,
    output_options,
    output_value_option,
    parse_platform,
    quiet_option,
    registry_options,
    write_output,
)
from ociinspect.errors import InvalidReference
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Platform
from ociinspect.model.reference import parse_reference
from ociinspect.reports import safe_text
from ociinspect.reports.text import human_size, text_table
from ociinspect.session import Session

__all__ = ["blob", "config", "digest", "manifest", "referrers", "repos", "tags"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DEADLINES.setdefault("blob", 1800.0)  # a whole blob streams, like a layer in waste/files

_OUTPUT = output_value_option  # the shared -o/--output (these commands write it through _sink)


def _registries(texts: Sequence[str]) -> set[str]:
    found = set()
    for text in texts:
        with contextlib.suppress(InvalidReference):
            ref = parse_reference(text)
            if ref.registry:
                found.add(ref.registry)
    return found


@contextlib.contextmanager
def _session(access: RegistryAccess, registries: set[str]) -> Iterator[Session]:
    with Session(access.settings, access.resolver(registries)) as session:
        yield session


def _platform_option(func: F) -> F:
    """``--platform``: the ``platform`` keyword becomes a :class:`Platform` (or None)."""

    @click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]", help=HELP["platform"])
    @quiet_option
    @functools.wraps(func)
    def wrapper(*args: Any, platform_text: str | None, **kwargs: Any) -> Any:
        return func(*args, platform=parse_platform(platform_text), **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _sink(output: str | None) -> Iterator[BinaryIO]:
    """stdout (binary), or a temporary file next to ``output`` renamed to it when the block ends without error
    (removed otherwise, so a failed or unverified read never leaves a file)."""
    if output is None:
        stream = click.get_binary_stream("stdout")
        yield stream
        stream.flush()
        return
    with atomic_output(output) as out:
        yield out


@cli.command()
@click.argument("ref")
@click.option("--index", is_flag=True, help="Print the index itself instead of one platform's manifest.")
@_OUTPUT
@_platform_option
@registry_options
def manifest(
    ref: str, index: bool, output: str | None, platform: Platform | None, registry_access: RegistryAccess
) -> None:
    """Print an image's manifest exactly as served (digest-verified): for a multi-platform image, the manifest
    of this host's platform (--platform to choose; --index for the index itself).

    \b
    Examples:
      ociinspect manifest docker://localhost:5000/app:1.0 | jq .
      ociinspect manifest --index docker://localhost:5000/app:1.0
      ociinspect manifest oci:fixtures/demo:latest -o manifest.json
    """
    with _session(registry_access, _registries([ref])) as session:
        raw = verbs.manifest(session, ref, platform, index)
    if index and not mt.is_index(raw.media_type):
        click.echo(f"ociinspect: warning: {safe_text(ref)} names a single manifest, not an index", err=True)
    with _sink(output) as out:
        out.write(raw.data)


@cli.command()
@click.argument("ref")
@_OUTPUT
@_platform_option
@registry_options
def config(ref: str, output: str | None, platform: Platform | None, registry_access: RegistryAccess) -> None:
    """Print an image's config blob exactly as stored (verified against its digest).

    \b
    Examples:
      ociinspect config docker://localhost:5000/app:1.0 | jq .config.Env
      ociinspect config --platform linux/arm64 docker://localhost:5000/app:1.0
    """
    with _session(registry_access, _registries([ref])) as session:
        data = verbs.config(session, ref, platform)
    with _sink(output) as out:
        out.write(data)


@cli.command()
@click.argument("ref")
@output_option
@_platform_option
@registry_options
def digest(ref: str, platform: Platform | None, registry_access: RegistryAccess) -> None:
    """Print the digest of the manifest REF names: for a multi-platform image the index's digest (the one to
    pin), or with --platform that platform's manifest digest.  From a registry: one HEAD request, no body.

    \b
    Examples:
      ociinspect digest docker://localhost:5000/app:1.0
      ociinspect digest --platform linux/arm64 docker://localhost:5000/app:1.0
    """
    with _session(registry_access, _registries([ref])) as session:
        write_output(verbs.digest(session, ref, platform))


def _write_lines(text: str, found: bool) -> None:
    """The list on stdout (or -o FILE); "No tags." on stderr when there is none."""
    if found:
        write_output(text)
    else:
        click.echo(text, err=True)


def _lines(names: list[str], fmt: str, what: str) -> str:
    if fmt == "json":
        return json.dumps(names, indent=2)
    if fmt == "markdown":
        return "\n".join(f"- `{safe_text(n).replace('`', '')}`" for n in names) or f"No {what}."
    return "\n".join(safe_text(n) for n in names) if names else f"No {what}."


@cli.command()
@click.argument("repo")
@output_options
@registry_options
def tags(repo: str, fmt: str, registry_access: RegistryAccess) -> None:
    """List a repository's tags, one per line (every page of the registry's list; --format json: a JSON list).

    REPO is HOST/REPO (or docker://HOST/REPO), or an OCI layout: oci:DIR, oci-archive:FILE.

    \b
    Examples:
      ociinspect tags localhost:5000/team/app
      ociinspect tags docker://localhost:5000/team/app -f json
    """
    with _session(registry_access, _registries([repo])) as session:
        names = verbs.tags(session, repo)
    _write_lines(_lines(names, fmt, "tags"), bool(names) or fmt == "json")


@cli.command()
@click.argument("registry")
@output_options
@registry_options
def repos(registry: str, fmt: str, registry_access: RegistryAccess) -> None:
    """List a registry's repositories (its catalog, every page), one per line (--format json: a JSON list).

    Many registries switch the catalog off; that is an error with a hint, not an empty list.

    \b
    Examples:
      ociinspect repos localhost:5000
    """
    host = registry.removeprefix("docker://").rstrip("/")
    with _session(registry_access, {host}) as session:
        names = verbs.repositories(session, registry)
    _write_lines(_lines(names, fmt, "repositories"), bool(names) or fmt == "json")


@cli.command()
@click.argument("ref")
@click.argument("blob_digest", metavar="DIGEST")
@_OUTPUT
@quiet_option
@registry_options
def blob(ref: str, blob_digest: str, output: str | None, registry_access: RegistryAccess) -> None:
    """Stream one blob of REF's repository (or local image) to stdout or -o FILE, verified against DIGEST and
    never held in memory whole.  On a digest mismatch -o leaves no file and the exit code is 3 (on stdout the
    bytes were already written: check the exit code).

    \b
    Examples:
      ociinspect blob docker://localhost:5000/app:1.0 sha256:4f… -o layer.tar.gz
      ociinspect blob oci:fixtures/demo sha256:4f… | tar tzf -
    """
    with _session(registry_access, _registries([ref])) as session, _sink(output) as out:
        verbs.blob(session, ref, blob_digest, out)


def _referrers_table(found: list[verbs.Referrer], fmt: str) -> str:
    cell = (lambda v: v) if fmt == "markdown" else safe_text  # Markdown cells are escaped by text_table
    rows = [
        (
            r.digest,
            cell(r.artifact_type or "-"),
            f"{human_size(r.size)} ({r.size} bytes)",
            cell(", ".join(f"{k}={v}" for k, v in sorted(r.annotations.items())) or "-"),
        )
        for r in found
    ]
    return text_table(rows, ["digest", "artifact type", "size", "annotations"], fmt == "markdown")


@cli.command()
@click.argument("ref")
@click.option("--artifact-type", metavar="TYPE", help="Only referrers of this artifactType.")
@output_options
@registry_options
def referrers(ref: str, artifact_type: str | None, fmt: str, registry_access: RegistryAccess) -> None:
    """List the OCI 1.1 referrers of an image (signatures, SBOMs, attestations): digest, artifact type, size and
    annotations.  Uses the registry's referrers API, or the sha256-<hex> tag schema where it has none.

    \b
    Examples:
      ociinspect referrers docker://localhost:5000/app:1.0
      ociinspect referrers docker://localhost:5000/app:1.0 --artifact-type application/spdx+json -f json
    """
    with _session(registry_access, _registries([ref])) as session:
        found = verbs.referrers(session, ref, artifact_type)
    if fmt == "json":
        write_output(json.dumps([r.to_json() for r in found], indent=2))
    elif not found:
        click.echo("No referrers.", err=True)
    else:
        write_output(_referrers_table(found, fmt))
