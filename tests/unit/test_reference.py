"""Reference parsing: skopeo's transport syntax, the Docker Hub rules, strict refusals."""

from __future__ import annotations

import pytest

from ociinspect.errors import ExitCode, InvalidReference
from ociinspect.model.reference import DOCKER_HUB, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", DOCKER_HUB, "library/alpine", None, None),
        ("alpine:3.20", DOCKER_HUB, "library/alpine", "3.20", None),
        ("docker://alpine", DOCKER_HUB, "library/alpine", None, None),
        ("docker.io/alpine", DOCKER_HUB, "library/alpine", None, None),
        ("index.docker.io/library/alpine:edge", DOCKER_HUB, "library/alpine", "edge", None),
        ("docker.io/bitnami/redis", DOCKER_HUB, "bitnami/redis", None, None),
        ("user/app", DOCKER_HUB, "user/app", None, None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
        ("ghcr.io/o/r:v1@" + D, "ghcr.io", "o/r", "v1", D),
        ("ghcr.io/o/r@" + D, "ghcr.io", "o/r", None, D),
        ("quay.io/a/b__c.d-e", "quay.io", "a/b__c.d-e", None, None),
        ("REGISTRY.example.com/a", "REGISTRY.example.com", "a", None, None),
    ],
)
def test_docker_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.transport, ref.registry, ref.repository, ref.tag, ref.digest) == (
        "docker",
        registry,
        repository,
        tag,
        digest,
    )


#: text -> (transport, registry, repository, tag, digest, path, archive_name, archive_index) and its canonical str.
#: Docker Hub rules: no host -> registry-1.docker.io, one-part names get library/, docker.io and index.docker.io
#: are the Hub; a missing tag stays None (the registry source then asks for "latest").
KNOWN = [
    (
        "alpine",
        ("docker", DOCKER_HUB, "library/alpine", None, None, None, None, None),
        f"docker://{DOCKER_HUB}/library/alpine",
    ),
    (
        "alpine:3.20",
        ("docker", DOCKER_HUB, "library/alpine", "3.20", None, None, None, None),
        f"docker://{DOCKER_HUB}/library/alpine:3.20",
    ),
    (
        "docker.io/library/alpine:latest",
        ("docker", DOCKER_HUB, "library/alpine", "latest", None, None, None, None),
        f"docker://{DOCKER_HUB}/library/alpine:latest",
    ),
    (
        "alpine@" + D,
        ("docker", DOCKER_HUB, "library/alpine", None, D, None, None, None),
        f"docker://{DOCKER_HUB}/library/alpine@{D}",
    ),
    (
        "user/app",
        ("docker", DOCKER_HUB, "user/app", None, None, None, None, None),
        f"docker://{DOCKER_HUB}/user/app",
    ),
    (
        "index.docker.io/user/app:v1",
        ("docker", DOCKER_HUB, "user/app", "v1", None, None, None, None),
        f"docker://{DOCKER_HUB}/user/app:v1",
    ),
    (
        "localhost:5000/x",
        ("docker", "localhost:5000", "x", None, None, None, None, None),
        "docker://localhost:5000/x",
    ),
    ("localhost/x", ("docker", "localhost", "x", None, None, None, None, None), "docker://localhost/x"),
    (
        "docker://ghcr.io/o/r:v1@" + D,
        ("docker", "ghcr.io", "o/r", "v1", D, None, None, None),
        f"docker://ghcr.io/o/r:v1@{D}",
    ),
    ("oci:/x/y:latest", ("oci", None, None, "latest", None, "/x/y", None, None), "oci:/x/y:latest"),
    ("oci:path:tag", ("oci", None, None, "tag", None, "path", None, None), "oci:path:tag"),
    ("oci:dir@" + D, ("oci", None, None, None, D, "dir", None, None), f"oci:dir@{D}"),
    ("oci:dir", ("oci", None, None, None, None, "dir", None, None), "oci:dir"),
    (
        "docker-archive:f.tar:repo/x:1",
        ("docker-archive", None, None, "1", None, "f.tar", "repo/x", None),
        "docker-archive:f.tar:repo/x:1",
    ),
    (
        "docker-archive:f.tar:@2",
        ("docker-archive", None, None, None, None, "f.tar", None, 2),
        "docker-archive:f.tar:@2",
    ),
    (
        "docker-archive:f.tar",
        ("docker-archive", None, None, None, None, "f.tar", None, None),
        "docker-archive:f.tar",
    ),
    (
        "oci-archive:a.tar:t",
        ("oci-archive", None, None, "t", None, "a.tar", None, None),
        "oci-archive:a.tar:t",
    ),
]


@pytest.mark.parametrize(("text", "fields", "canonical"), KNOWN, ids=[k[0][:40] for k in KNOWN])
def test_known_references_parse_and_round_trip(text: str, fields: tuple[object, ...], canonical: str) -> None:
    ref = parse_reference(text)
    assert (
        ref.transport,
        ref.registry,
        ref.repository,
        ref.tag,
        ref.digest,
        ref.path,
        ref.archive_name,
        ref.archive_index,
    ) == fields
    assert str(ref) == canonical
    assert parse_reference(str(ref)) == ref  # the printed form means the same reference
    assert str(parse_reference(str(parse_reference(text)))) == str(parse_reference(text))


@pytest.mark.parametrize(
    ("text", "path", "tag", "digest"),
    [
        ("oci:./layout", "./layout", None, None),
        ("oci:/abs/layout:v1", "/abs/layout", "v1", None),
        ("oci:layout@" + D, "layout", None, D),
        ("oci-archive:img.tar", "img.tar", None, None),
        ("oci-archive:img.tar:latest", "img.tar", "latest", None),
    ],
)
def test_layout_references(text: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.path, ref.tag, ref.digest) == (path, tag, digest)


def test_docker_archive_references() -> None:
    assert parse_reference("docker-archive:a.tar").archive_name is None
    r = parse_reference("docker-archive:a.tar:team/app:1.0")
    assert (r.path, r.archive_name, r.tag) == ("a.tar", "team/app", "1.0")
    r = parse_reference("docker-archive:a.tar:team/app")
    assert (r.archive_name, r.tag) == ("team/app", "latest")
    assert parse_reference("docker-archive:a.tar:@3").archive_index == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a/b:t:u", "more than one ':'"),
        ("a:t:u", "more than one ':'"),
        ("Foo/bar", "lower case"),
        ("docker://x.io/App", "lower case"),
        ("alpine@sha256:abc", "digest"),
        ("alpine@md5:" + "a" * 32, "digest"),
        ("alpine@sha256:" + "A" * 64, "digest"),
        ("x//y", "not valid"),
        ("-x/y", "not valid"),
        ("x/y:-t", "tag"),
        ("x/y:" + "t" * 129, "tag"),
        ("", "empty"),
        ("docker:alpine", "docker://"),
        ("dir:/tmp/x", "not supported"),
        ("https://x.io/a", "not supported"),
        ("oci:", "needs a path"),
        ("oci::tag", "needs a path"),
        ("docker-archive:", "needs a file"),
        ("docker-archive:a.tar:@x", "index"),
        ("docker-archive:a.tar:x@" + D, "not by digest"),
        ("bad_host:5000/x", "not a valid host"),
        ("h.io/" + "a" * 260, "longer than"),
    ],
)
def test_refusals(text: str, match: str) -> None:
    with pytest.raises(InvalidReference, match=match) as exc:
        parse_reference(text)
    assert exc.value.exit_code == ExitCode.USAGE
    assert exc.value.hint
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("tag", ["ｖ1", "v²", "é", "١٢", "a\u200b", "x" * 129, ".hidden", "-x"])
def test_tags_are_ascii_only_everywhere(tag: str) -> None:
    """The OCI tag grammar is ASCII (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`): Python's `\\w` would let Unicode letters and
    digits through, in references and in the registry client alike (one rule)."""
    from ociinspect.errors import InvalidReference
    from ociinspect.model.reference import is_tag
    from ociinspect.registry.client import _check_reference

    assert not is_tag(tag)
    with pytest.raises(InvalidReference):
        parse_reference(f"docker://registry.example.com/app:{tag}")
    with pytest.raises(InvalidReference):
        _check_reference(tag)
