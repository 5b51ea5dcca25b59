"""The everyday verbs: raw manifest, config, digest, tags, repositories, one blob, referrers.

What crane, skopeo and regctl users reach for first, as typed library calls over a :class:`~ociinspect.session.Session`.
Every source works where it makes sense (registry, ``oci:``, ``oci-archive:``, ``docker-archive:``, and archives piped
on standard input as ``docker-archive:-``); manifests are parsed and indexes resolved by
:mod:`ociinspect.image.loader` (there is no second manifest parser here), and every byte returned is verified against
the digest that names it.  Each function states its cost in requests (registries) or reads (local sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from ociinspect.errors import (
    AuthError,
    InvalidImage,
    OciInspectError,
    RegistryNotFound,
    UsageError,
)
from ociinspect.image.loader import (
    MAX_CONFIG_BYTES,
    LoadOptions,
    manifest_facts,
    parse_descriptor,
    parse_manifest,
    resolve,
    root_manifest,
)
from ociinspect.model import digest as digests
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Image, Platform, RawManifest
from ociinspect.model.record import record
from ociinspect.model.reference import Reference, parse_reference, parse_repository
from ociinspect.session import Session
from ociinspect.sources.base import Source

__all__ = [
    "Referrer",
    "blob",
    "config",
    "digest",
    "image_referrer_count",
    "manifest",
    "referrer_count",
    "referrers",
    "repositories",
    "tags",
]


@record
class Referrer:
    """One manifest that names another as its ``subject`` (a signature, an SBOM, an attestation …)."""

    digest: str
    media_type: str
    artifact_type: str | None
    size: int  # bytes of the referring manifest
    annotations: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        """``{"digest", "mediaType", "artifactType", "size", "annotations"}`` (the OCI descriptor's names)."""
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "annotations": dict(self.annotations),
        }


def _ref(reference: str | Reference) -> Reference:
    return parse_reference(reference) if not isinstance(reference, Reference) else reference


def _resolved(source: Source, platform: Platform | None, index: bool) -> RawManifest:
    """The root manifest (checked against a pinned digest), or (an index without ``index``) the one manifest for
    ``platform`` (default: host), chosen by :func:`ociinspect.image.loader.resolve` (its platform pick, its nesting
    limit, each child verified against its descriptor's digest and size)."""
    if index and platform is not None:
        raise UsageError("--index and --platform exclude each other", hint="give one of them")
    if index:
        raw = root_manifest(source)
        manifest_facts(raw, f"reading {source.reference}")  # refuse what is not a manifest or an index
        return raw
    resolution = resolve(source, LoadOptions(platform=platform))
    assert resolution.raw is not None  # resolve() always sets it
    return resolution.raw


def _context(source: Source, exc: OciInspectError) -> OciInspectError:
    return exc.with_context(f"reading {source.reference}")


def manifest(
    session: Session, ref: str | Reference, platform: Platform | None = None, index: bool = False
) -> RawManifest:
    """The manifest bytes exactly as served, digest-verified.

    An index is resolved to one platform's manifest (``platform``, default: this host's Linux platform, as
    ``inspect`` does; attestations skipped); ``index=True`` returns what the reference names itself, index or not
    (the caller may warn when it is not an index).  For ``docker-archive:`` the manifest is the one synthesized from
    the archive's ``manifest.json`` (skopeo does the same).  Cost: one manifest read, + one per index level
    resolved (each verified against its descriptor's digest and size).
    """
    with session.source(_ref(ref)) as src:
        try:
            return _resolved(src, platform, index)
        except OciInspectError as exc:
            raise _context(src, exc) from None


def config(session: Session, ref: str | Reference, platform: Platform | None = None) -> bytes:
    """The config blob's bytes of the manifest :func:`manifest` resolves (an artifact's config too, whatever its
    media type), verified against the descriptor's digest and size.

    Cost: that of :func:`manifest`, + one blob read of at most 8 MiB (:class:`~ociinspect.errors.LimitExceeded`
    beyond).
    """
    with session.source(_ref(ref)) as src:
        try:
            raw = _resolved(src, platform, False)
            d = manifest_facts(raw, f"reading {src.reference}").config
            assert d is not None  # a manifest (not an index) always has its config descriptor
            return src.blob(d.digest, size=d.size, max_bytes=MAX_CONFIG_BYTES)
        except OciInspectError as exc:
            raise _context(src, exc) from None


def digest(session: Session, ref: str | Reference, platform: Platform | None = None) -> str:
    """The digest of the manifest the reference names — for a multi-platform image the index's own digest (the one
    to pin); with ``platform``, the digest of that platform's manifest in the index.

    Cost (registry): one HEAD, no body, when the registry sends ``Docker-Content-Digest`` (else one GET, hashed);
    with ``platform`` and an index, + the index GET and the chosen manifest's GET.  Local sources: one manifest
    read (+ one per index level with ``platform``).
    """
    reference = _ref(ref)
    if reference.is_registry and reference.registry and reference.repository:
        client = session.client
        name = reference.digest or reference.tag or "latest"
        try:
            found, media_type = client.manifest_digest(reference.registry, reference.repository, name)
        except OciInspectError as exc:
            raise exc.with_context(f"reading {reference}") from None
        if platform is None or (media_type is not None and not mt.is_index(media_type)):
            return found
        return manifest(session, reference.with_digest(found), platform).digest
    return manifest(session, reference, platform, index=platform is None).digest


def tags(session: Session, repo: str) -> list[str]:
    """Every tag of a registry repository (``HOST/REPO`` or ``docker://HOST/REPO``, no tag), in the registry's
    order, or of an OCI layout (``oci:DIR``, ``oci-archive:FILE``: the ``org.opencontainers.image.ref.name``
    annotations of its index.json, sorted).

    Cost (registry): one GET per page, ``Link: <…>; rel="next"`` followed (relative links allowed, other hosts
    refused), each page ≤ 32 MiB.  Local: one read of index.json.
    """
    reference = parse_reference(repo)
    if reference.is_registry:
        if reference.tag or reference.digest:
            raise UsageError(
                f"tags lists a repository; {repo!r} names an image",
                hint=f"drop the tag or digest: ociinspect tags {reference.registry}/{reference.repository}",
            )
        assert reference.registry and reference.repository
        try:
            return session.client.list_tags(reference.registry, reference.repository)
        except OciInspectError as exc:
            raise exc.with_context(f"listing tags of {reference.registry}/{reference.repository}") from None
    if reference.transport == "docker-archive":
        raise UsageError(
            f"tags: {repo!r} is a docker-archive, which has no tag list",
            hint="`ociinspect inspect` shows its image; tags work for registries, oci: and oci-archive:",
        )
    from ociinspect.sources.local import LayoutSource

    with session.source(reference) as src:
        assert isinstance(src, LayoutSource)
        return src.tags()


_CATALOG_HINT = (
    "many registries switch /v2/_catalog off or limit it to some accounts (Docker Hub, GHCR, ECR do); log in with "
    "an account that may list it, or list a repository you know with `ociinspect tags HOST/REPO`"
)


def repositories(session: Session, registry: str) -> list[str]:
    """The registry's catalog (``GET /v2/_catalog``, paginated): every repository name, in the registry's order.

    ``registry`` is ``HOST[:PORT]`` (``docker://`` and a trailing ``/`` allowed; ``docker.io`` means Docker Hub).
    A registry that refuses the catalog (401, 403 or 404) raises the same typed error
    (:class:`~ociinspect.errors.AuthError` or :class:`~ociinspect.errors.RegistryNotFound`) saying so, with a hint.
    Cost: one GET per page of up to 1000 names (+ auth), each page ≤ 32 MiB.
    """
    host = registry.removeprefix("docker://").rstrip("/")
    if not host or "/" in host or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(
            f"repos takes a registry host, not {registry!r}",
            hint="write HOST[:PORT], e.g. ociinspect repos registry.example.com or localhost:5000",
        )
    name, _ = parse_repository(registry, f"{host}/x")  # validates the host; Docker Hub aliases mapped
    try:
        return list(session.client.catalog(name))
    except (AuthError, RegistryNotFound) as exc:
        exc.message = (
            f"listing repositories of {name}: the registry does not offer its catalog ({exc.message})"
        )
        exc.args = (exc.message,)
        exc.hint = _CATALOG_HINT
        raise exc from None


def blob(session: Session, ref: str | Reference, digest: str, out: BinaryIO) -> int:
    """Stream the blob ``digest`` of the repository (or local image) ``ref`` names into ``out``; return its size in
    bytes.  Never held in memory whole: chunks of ≤ 1 MiB are hashed and written as they arrive.

    The digest is checked after the last chunk: on a mismatch :class:`~ociinspect.errors.DigestMismatch` is raised
    *after* the bytes were written, so callers writing a file must write to a temporary name and rename it only
    when this returns (``ociinspect blob -o`` does).  Cost: one blob GET (+ auth, redirects) or one local read.
    """
    digests.parse(digest)
    with session.source(_ref(ref)) as src:
        try:
            count = 0
            with src.open_blob(digest, size=None) as chunks:
                for chunk in chunks:
                    out.write(chunk)
                    count += len(chunk)
            return count
        except OciInspectError as exc:
            raise _context(src, exc) from None


def _fallback_tag(subject: str) -> str:
    """The referrers tag schema: ``<alg>-<hex>`` (hex truncated to 64 characters, as the spec says)."""
    algorithm, hexpart = digests.parse(subject)
    return f"{algorithm}-{hexpart[:64]}"


def _referrers_of(
    session: Session, registry: str, repository: str, subject: str, artifact_type: str | None
) -> list[Referrer]:
    client = session.client
    items = client.get_referrers(registry, repository, subject, artifact_type=artifact_type)
    what = f"listing referrers of {registry}/{repository}@{subject}"
    if items is None:  # no referrers API: the tag schema
        try:
            fetched = client.get_manifest(registry, repository, _fallback_tag(subject))
        except RegistryNotFound:
            return []
        media_type, doc = parse_manifest(fetched, what)
        if not mt.is_index(media_type):
            raise InvalidImage(
                f"{what}: the tag {_fallback_tag(subject)} is not an index",
                hint="something else was pushed under the referrers fallback tag",
            )
        raw_items = doc.get("manifests") or []
        if not isinstance(raw_items, list):
            raise InvalidImage(f"{what}: the referrers index's manifests field is not a list")
        items = raw_items
    found = []
    for item in items:
        d = parse_descriptor(item, what)
        if artifact_type is not None and d.artifact_type != artifact_type:
            continue  # registries may ignore the filter; the tag schema has none
        found.append(Referrer(d.digest, d.media_type, d.artifact_type, d.size, d.annotations))
    return found


def _registry_ref(reference: Reference, verb: str) -> tuple[str, str]:
    if not reference.is_registry or not reference.registry or not reference.repository:
        raise UsageError(
            f"{verb}: {reference} is a local image; referrers are a registry feature",
            hint="name the image in its registry, e.g. docker://HOST/REPO:TAG",
        )
    return reference.registry, reference.repository


def referrers(session: Session, ref: str | Reference, artifact_type: str | None = None) -> list[Referrer]:
    """The OCI 1.1 referrers of the manifest ``ref`` names (for a multi-platform image, of the index): signatures,
    SBOMs, attestations.  The referrers API (``GET /v2/NAME/referrers/DIGEST``, ``artifactType`` filter) when the
    registry has it, else the ``sha256-<hex>`` tag schema (none when that tag does not exist).
    ``artifact_type`` keeps only referrers of that type.

    Cost: one HEAD for the digest (none when ``ref`` is pinned by digest), + one GET per referrers page, + one
    manifest GET on registries without the API.  Registry references only (:class:`UsageError` for local ones).
    """
    reference = _ref(ref)
    registry, repository = _registry_ref(reference, "referrers")
    try:
        subject = reference.digest or digest(session, reference)
        return _referrers_of(session, registry, repository, subject, artifact_type)
    except OciInspectError as exc:
        raise exc.with_context(f"reading {reference}") from None


def referrer_count(session: Session, ref: str | Reference, subject: str) -> int:
    """How many referrers the manifest ``subject`` (a digest in ``ref``'s repository) has, for ``inspect``.

    Cost: one GET (the referrers API), + one manifest GET on registries without it.  Registry references only.
    """
    registry, repository = _registry_ref(_ref(ref), "referrers")
    return len(_referrers_of(session, registry, repository, subject, None))


def image_referrer_count(session: Session, image: Image, cache: dict[str, int] | None = None) -> int | None:
    """For ``inspect``: how many referrers the image's top manifest (its index when it came from one) has, or
    ``None`` for a local image (no request).  ``cache`` (subject digest → count) saves the request for the other
    platforms of one index.  Cost: one GET (the referrers API), + one manifest GET on registries without it.
    """
    reference = parse_reference(image.reference)
    if not reference.is_registry:
        return None
    subject = image.index_digest or image.digest
    if cache is not None and subject in cache:
        return cache[subject]
    count = referrer_count(session, reference, subject)
    if cache is not None:
        cache[subject] = count
    return count
