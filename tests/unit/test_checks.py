"""Every rule of ``ociinspect check`` at, just below and just above its threshold, on images built in memory.

The measured values are computed by hand from the specs below (not from ociinspect's output): layer sizes are
the descriptor sizes written here; dive's numbers follow dive's definitions (``docs/waste.md``) on two layers
``L0 = {a: 100, b: 300}`` and ``L1 = {a: 100, c: 500}``: ``/a`` is in both layers, so its cumulative size is 200
and its smallest 100; efficiency = (100 + 300 + 500) / (200 + 300 + 500) = 0.9; wasted bytes = 200; user bytes
(all but the first layer) = 600; user wasted ratio = 200 / 600.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pytest

from ociinspect.model.entries import Entry, make_entry
from ociinspect.model.image import (
    Descriptor,
    HistoryEntry,
    Image,
    ImageConfig,
    IndexEntry,
    Layer,
    Platform,
    SizeEstimate,
    frozen_map,
)
from ociinspect.policy.rules import (
    RULES,
    Facts,
    Finding,
    ImageCheck,
    Policy,
    RuleConfig,
    compile_glob,
    evaluate,
    exit_code,
    is_root_user,
)

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image(
    sizes: Sequence[int] = (1000, 500),
    *,
    uncompressed: Sequence[int | None] | None = None,
    diff_ids: Sequence[str] | None = None,
    name: str = "img",
    user: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    platforms: Sequence[str] = (),
) -> Image:
    unc = list(uncompressed) if uncompressed is not None else [s * 3 for s in sizes]
    layers = tuple(
        Layer(
            i,
            Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest(f"{name}-blob-{i}-{s}"), s),
            (diff_ids[i] if diff_ids else digest(f"{name}-diff-{i}")),
            HistoryEntry(created_by=f"RUN step {i}"),
            SizeEstimate(unc[i], "trailer" if unc[i] is not None else "unknown"),
        )
        for i, s in enumerate(sizes)
    )
    entries = tuple(
        IndexEntry(
            Descriptor(
                "application/vnd.oci.image.manifest.v1+json", digest(p), 500, platform=Platform.parse(p)
            ),
            "image",
        )
        for p in platforms
    )
    return Image(
        reference=f"oci:/x/{name}:latest",
        digest=digest(name + "-manifest"),
        media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=400,
        platform=Platform("linux", "amd64"),
        config_descriptor=Descriptor(
            "application/vnd.oci.image.config.v1+json", digest(name + "-config"), 300
        ),
        config=ImageConfig(os="linux", architecture="amd64", user=user, labels=frozen_map(labels)),
        layers=layers,
        annotations=frozen_map(annotations),
        index_entries=entries,
    )


def f(path: str, size: int, sha: str | None = None) -> Entry:
    e = make_entry(path, "0", size, 0o644)
    if sha is None:
        return e
    return Entry(e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, sha256=sha)


def wh(path: str) -> Entry:
    head, _, base = path.rpartition("/")
    return make_entry(f"{head}/.wh.{base}" if head else f".wh.{base}", "0", 0, 0o644)


DIVE_LAYERS = [[f("a", 100), f("b", 300)], [f("a", 100), f("c", 500)]]
EFFICIENCY = 900 / 1000
WASTED = 200
USER_RATIO = 200 / 600


def run(rule: str, value: object, facts: Facts, severity: str = "error") -> tuple[str, object]:
    policy = Policy().merged([RuleConfig(rule, value, severity)])  # type: ignore[arg-type]
    finding = evaluate(policy, facts).findings[0]
    assert finding.rule == rule
    return finding.status, finding.measured


# ------------------------------------------------------------------------------ thresholds, table-driven

up, down = (lambda x: math.nextafter(x, math.inf)), (lambda x: math.nextafter(x, -math.inf))

THRESHOLDS = [
    # rule, image facts, measured (by hand), [(threshold, expected status)] at / below / above
    (
        "max-compressed-size",
        Facts(image((1000, 500))),
        1500,
        [(1500, "pass"), (1499, "fail"), (1501, "pass")],
    ),
    (
        "max-uncompressed-size",
        Facts(image((10, 20), uncompressed=(4000, 6000))),
        10000,
        [(10000, "pass"), (9999, "fail"), (10001, "pass")],
    ),
    ("max-layers", Facts(image((1, 2, 3))), 3, [(3, "pass"), (2, "fail"), (4, "pass")]),
    ("max-layer-size", Facts(image((700, 900, 800))), 900, [(900, "pass"), (899, "fail"), (901, "pass")]),
    (
        "max-layer-uncompressed-size",
        Facts(image((1, 1), uncompressed=(5000, 7000))),
        7000,
        [(7000, "pass"), (6999, "fail"), (7001, "pass")],
    ),
    # dive: lowest efficiency fails below, the others above
    (
        "lowest-efficiency",
        Facts(image((1, 1)), layers=DIVE_LAYERS),
        EFFICIENCY,
        [(EFFICIENCY, "pass"), (down(EFFICIENCY), "pass"), (up(EFFICIENCY), "fail")],
    ),
    (
        "highest-wasted-bytes",
        Facts(image((1, 1)), layers=DIVE_LAYERS),
        WASTED,
        [(WASTED, "pass"), (WASTED - 1, "fail"), (WASTED + 1, "pass")],
    ),
    (
        "highest-user-wasted-percent",
        Facts(image((1, 1)), layers=DIVE_LAYERS),
        USER_RATIO,
        [(USER_RATIO, "pass"), (down(USER_RATIO), "fail"), (up(USER_RATIO), "pass")],
    ),
    (
        "max-duplicate-bytes",
        Facts(
            image((1, 1)),
            layers=[[f("x", 250, "aa"), f("y", 250, "aa")], [f("z", 250, "aa"), f("w", 9, "bb")]],
            hashed=True,
        ),
        500,
        [(500, "pass"), (499, "fail"), (501, "pass")],
    ),
    (
        "max-growth-bytes",
        Facts(image((1000, 500)), baseline=image((1000, 200), name="old")),
        300,
        [(300, "pass"), (299, "fail"), (301, "pass")],
    ),
    (
        "max-growth-percent",
        Facts(image((1000, 500)), baseline=image((1000, 200), name="old")),
        25.0,
        [(25.0, "pass"), (down(25.0), "fail"), (up(25.0), "pass")],
    ),
]


@pytest.mark.parametrize(("rule", "facts", "measured", "cases"), THRESHOLDS, ids=[t[0] for t in THRESHOLDS])
def test_threshold_at_below_above(
    rule: str, facts: Facts, measured: object, cases: list[tuple[object, str]]
) -> None:
    for threshold, expected in cases:
        status, got = run(rule, threshold, facts)
        assert got == measured, (rule, threshold)
        assert status == expected, (rule, threshold, got)


def test_every_threshold_rule_is_tested() -> None:
    numeric = {r for r, s in RULES.items() if s.kind in ("bytes", "count", "ratio", "percent")}
    assert numeric == {t[0] for t in THRESHOLDS}


def test_severity_warning_turns_a_failure_into_a_warning_and_disabled_skips() -> None:
    facts = Facts(image((1, 2, 3)))
    assert run("max-layers", 2, facts, "warning")[0] == "warn"
    assert run("max-layers", 3, facts, "warning")[0] == "pass"
    assert run("max-layers", None, facts)[0] == "skip"


def test_unknown_sizes_are_undecidable_and_say_why_unless_a_scan_measured_them() -> None:
    # issue 10 §1: this used to assert "fail" (an unmeasurable size failed the gate); the rule is now
    # "undecidable" (its own status, exit 4), never a pass or a fail on a guess.
    img = image((10, 20), uncompressed=(4000, None))
    policy = Policy().merged([RuleConfig("max-uncompressed-size", 10**9)])
    finding = evaluate(policy, Facts(img)).findings[0]
    assert (
        finding.status == "undecidable"
        and finding.measured is None
        and "layer(s) 1 unknown" in (finding.note or "")
    )
    finding = evaluate(policy, Facts(img, layer_sizes=[4000, 6001])).findings[0]
    assert (finding.status, finding.measured) == ("pass", 10001)


def test_content_rules_without_contents_fail_loudly() -> None:
    finding = evaluate(Policy().merged([RuleConfig("lowest-efficiency", 0.5)]), Facts(image())).findings[0]
    assert finding.status == "fail" and finding.note == "the layer contents were not read"


def test_duplicates_need_hashes() -> None:
    facts = Facts(image((1, 1)), layers=[[f("x", 5)], [f("y", 5)]], hashed=False)
    finding = evaluate(Policy().merged([RuleConfig("max-duplicate-bytes", 0)]), facts).findings[0]
    assert finding.status == "fail" and finding.note == "file contents were not hashed"


# ------------------------------------------------------------------------------ dive's NaN and +Inf


def test_user_wasted_percent_nan_never_fails_and_inf_always_does() -> None:
    # nothing wasted and no user bytes: dive computes 0/0 = NaN, and NaN > threshold is false
    nothing = Facts(image((1, 1)), layers=[[f("a", 10)], []])
    assert run("highest-user-wasted-percent", 0.0, nothing) == ("pass", "NaN")
    # /a rewritten empty in layer 1: wasted 10 (10 + 0), user bytes 0 -> +Inf, which fails any threshold
    inf = Facts(image((1, 1)), layers=[[f("a", 10)], [f("a", 0)]])
    assert run("highest-user-wasted-percent", 1.0, inf) == ("fail", "+Inf")
    # a NaN threshold (dive accepts "nan") never fails, as in dive
    assert run("highest-user-wasted-percent", math.nan, inf)[0] == "pass"
    assert run("lowest-efficiency", math.nan, inf)[0] == "pass"


# ------------------------------------------------------------------------------ growth


def test_growth_edges() -> None:
    smaller = Facts(image((1000, 100)), baseline=image((1000, 500), name="old"))
    assert run("max-growth-bytes", 0, smaller) == ("pass", -400)
    assert run("max-growth-percent", 0, smaller)[0] == "pass"
    no_base = Facts(image())
    status, measured = run("max-growth-bytes", 10, no_base)
    assert status == "skip" and measured is None
    from_empty = Facts(image((10,)), baseline=image((), name="empty"))
    assert run("max-growth-percent", 1000, from_empty) == ("fail", "+Inf")
    note = Facts(image(), baseline_note="baseline x not found (first push?): growth not checked")
    finding = evaluate(Policy().merged([RuleConfig("max-growth-bytes", 1)]), note).findings[0]
    assert finding.status == "skip" and "first push" in (finding.note or "")


def test_growth_on_uncompressed_sizes() -> None:
    facts = Facts(image((1, 1), uncompressed=(100, 50)), baseline=image((1,), uncompressed=(100,), name="o"))
    policy = Policy(growth_basis="uncompressed").merged([RuleConfig("max-growth-bytes", 49)])
    assert evaluate(policy, facts).findings[0].measured == 50
    assert evaluate(policy, facts).findings[0].status == "fail"
    assert policy.needs("sizes")


# ------------------------------------------------------------------------------ unknown / ambiguous sizes

AMBIGUOUS = SizeEstimate(
    None, "unknown", "ambiguous: gzip trailer", candidates=(104_857_600, 104_857_600 + 2**32)
)


def with_sizes(img: Image, estimates: Sequence[SizeEstimate]) -> Image:
    import dataclasses

    layers = tuple(
        dataclasses.replace(lyr, uncompressed=e) for lyr, e in zip(img.layers, estimates, strict=True)
    )
    return dataclasses.replace(img, layers=layers)


@pytest.mark.parametrize("rule", ["max-uncompressed-size", "max-layer-uncompressed-size"])
def test_ambiguous_size_is_undecidable_not_a_guess(rule: str) -> None:
    """An ambiguous layer (100 MiB or 4.1 GiB) under a 1 GB limit: neither pass nor fail; the note names the
    layer, its candidates and --exact."""
    img = with_sizes(image((10, 20)), [SizeEstimate(4000, "trailer"), AMBIGUOUS])
    finding = evaluate(Policy().merged([RuleConfig(rule, 10**9)]), Facts(img)).findings[0]
    assert finding.status == "undecidable" and finding.measured is None
    assert "104857600 or 4399824896 bytes" in (finding.note or "") and "--exact" in (finding.note or "")
    check = evaluate(Policy().merged([RuleConfig(rule, 10**9)]), Facts(img))
    assert check.status == "undecidable" and exit_code([check], unreadable=False, warn_only=False) == 4
    warned = evaluate(Policy().merged([RuleConfig(rule, 10**9, "warning")]), Facts(img))
    assert warned.status == "warn" and exit_code([warned], unreadable=False, warn_only=False) == 0


def test_unknown_size_still_fails_when_the_known_part_is_over_the_limit() -> None:
    img = with_sizes(image((10, 20)), [SizeEstimate(5000, "trailer"), AMBIGUOUS])
    total = evaluate(Policy().merged([RuleConfig("max-uncompressed-size", 10**8)]), Facts(img)).findings[0]
    assert (total.status, total.measured) == ("fail", 5000 + 104_857_600)  # at least the smallest candidate
    layer = evaluate(
        Policy().merged([RuleConfig("max-layer-uncompressed-size", 10**8)]), Facts(img)
    ).findings[0]
    assert (layer.status, layer.measured) == ("fail", 104_857_600)
    other = Policy().merged(
        [RuleConfig("max-uncompressed-size", 10**9), RuleConfig("max-layers", 1)]
    )  # a failed rule gives exit 1 even when another is undecidable
    check = evaluate(other, Facts(img))
    assert [f.status for f in check.findings] == ["undecidable", "fail"]
    assert exit_code([check], unreadable=False, warn_only=False) == 1


def test_growth_on_unknown_uncompressed_sizes_is_undecidable() -> None:
    unknown = SizeEstimate(None, "unknown", "zstd frame header has no content size; use --exact")
    policy = Policy(growth_basis="uncompressed").merged([RuleConfig("max-growth-bytes", 49)])
    now = with_sizes(image((1, 1)), [SizeEstimate(100, "trailer"), unknown])
    finding = evaluate(policy, Facts(now, baseline=image((1,), uncompressed=(100,), name="o"))).findings[0]
    assert finding.status == "undecidable" and "image: uncompressed size of layer(s) 1" in (
        finding.note or ""
    )
    before = with_sizes(image((1,), name="o"), [AMBIGUOUS])
    finding = evaluate(policy, Facts(image((1, 1)), baseline=before)).findings[0]
    assert finding.status == "undecidable" and "baseline: " in (finding.note or "")
    compressed = Policy().merged([RuleConfig("max-growth-bytes", 49)])  # compressed basis: always decidable
    assert evaluate(compressed, Facts(now, baseline=before)).findings[0].status == "pass"


# ------------------------------------------------------------------------------ forbidden paths

GLOBS = [
    ("**/*.pem", "/a.pem", True),
    ("**/*.pem", "/etc/ssl/private/key.pem", True),
    ("**/*.pem", "/etc/.hidden.pem", True),
    ("**/*.pem", "/etc/key.pem.bak", False),
    ("**/id_rsa", "/root/.ssh/id_rsa", True),
    ("**/id_rsa", "/id_rsa", True),
    ("**/id_rsa", "/root/.ssh/id_rsa.pub", False),
    ("**/.env", "/app/.env", True),
    ("**/.env", "/app/.envrc", False),
    ("/root/.cache/**", "/root/.cache/pip/wheel.whl", True),
    ("/root/.cache/**", "/root/.cache", False),
    ("/root/.cache/**", "/root/.cachex/a", False),
    ("etc/shadow", "/etc/shadow", True),
    ("etc/shadow", "/x/etc/shadow", False),
    ("/usr/*/id_?sa", "/usr/lib/id_rsa", True),
    ("/usr/*/id_?sa", "/usr/lib/sub/id_rsa", False),
    ("/var/[!c]*", "/var/log", True),
    ("/var/[!c]*", "/var/cache", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/y/b", True),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), GLOBS)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(path)) is matches


def test_unterminated_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="closing"):
        compile_glob("/a[b")


def test_forbidden_paths_are_found_in_every_layer_even_when_deleted_later() -> None:
    layers = [
        [make_entry("root/.ssh", "5", 0, 0o700), f("root/.ssh/id_rsa", 1675), f("app/main.py", 10)],
        [wh("root/.ssh/id_rsa"), f("app/.env", 20)],
    ]
    facts = Facts(image((1, 1)), layers=layers)
    policy = Policy().merged([RuleConfig("forbidden-paths", ("**/id_rsa", "**/.env", "**/*.pem"))])
    finding = evaluate(policy, facts).findings[0]
    assert finding.status == "fail" and finding.measured == 2
    assert finding.details[0].startswith("/root/.ssh/id_rsa (layer 0, deleted or replaced later")
    assert finding.details[1] == "/app/.env (layer 1; **/.env)"
    clean = evaluate(Policy().merged([RuleConfig("forbidden-paths", ("**/*.pem",))]), facts).findings[0]
    assert (clean.status, clean.measured) == ("pass", 0)


# ------------------------------------------------------------------------------ metadata


def test_required_labels_and_annotations() -> None:
    img = image(labels={"org.opencontainers.image.source": "https://x", "empty": " "}, annotations={"a": "1"})
    need = ("org.opencontainers.image.source", "empty", "missing")
    finding = evaluate(Policy().merged([RuleConfig("required-labels", need)]), Facts(img)).findings[0]
    assert finding.status == "fail" and finding.details == ("missing: missing", "empty: empty")
    ok = evaluate(Policy().merged([RuleConfig("required-labels", need[:1])]), Facts(img)).findings[0]
    assert ok.status == "pass"
    ann = evaluate(Policy().merged([RuleConfig("required-annotations", ("a", "b"))]), Facts(img)).findings[0]
    assert ann.status == "fail" and ann.details == ("b: missing",)


@pytest.mark.parametrize(
    ("user", "root"),
    [
        (None, True),
        ("", True),
        ("root", True),
        ("0", True),
        ("00", True),
        ("0:0", True),
        ("root:staff", True),
        ("1000", False),
        ("1000:0", False),
        ("nobody", False),
        ("app:app", False),
        ("rootless", False),
    ],
)
def test_root_user(user: str | None, root: bool) -> None:
    assert is_root_user(user) is root
    assert run("non-root-user", True, Facts(image(user=user)))[0] == ("fail" if root else "pass")


# ------------------------------------------------------------------------------ bases


def test_allowed_base_from_annotations() -> None:
    base_digest = digest("debian-12")
    img = image(annotations={BASE_NAME: "docker.io/library/debian:12", BASE_DIGEST: base_digest})
    cases = [
        (("debian",), "pass"),  # repository, any tag
        (("docker.io/library/debian:12",), "pass"),
        (("registry-1.docker.io/library/debian:12",), "pass"),  # the Hub's aliases are one registry
        (("debian:11",), "fail"),
        (("ubuntu", base_digest), "pass"),  # by digest
        ((digest("other"),), "fail"),
        (("alpine", "ubuntu"), "fail"),
    ]
    for allowed, expected in cases:
        assert run("allowed-base-images", allowed, Facts(img))[0] == expected, allowed


def test_allowed_base_by_layer_prefix() -> None:
    shared = [digest("diff-base-0")]
    base = image((1000,), diff_ids=shared, name="base")
    img = image((1000, 50), diff_ids=[*shared, digest("app")], name="app")
    other = image((900,), diff_ids=[digest("other")], name="other")
    assert run("allowed-base-images", ("x/base",), Facts(img, bases=[other, base]))[0] == "pass"
    finding = evaluate(
        Policy().merged([RuleConfig("allowed-base-images", ("a", "b"))]), Facts(img, bases=[other])
    )
    assert finding.findings[0].status == "fail"
    assert "1 of 2 allowed bases could be loaded" in (finding.findings[0].note or "")
    assert run("allowed-base-images", ("x/base",), Facts(base, bases=[base]))[0] == "pass"  # the base itself


# ------------------------------------------------------------------------------ platforms


def test_platform_rules() -> None:
    img = image(platforms=("linux/amd64", "linux/arm64/v8"))
    assert run("allowed-platforms", ("linux/amd64", "linux/arm64"), Facts(img))[0] == "pass"
    assert run("allowed-platforms", ("linux/amd64",), Facts(img))[0] == "fail"
    assert run("required-platforms", ("linux/arm64/v8",), Facts(img))[0] == "pass"
    assert run("required-platforms", ("linux/arm64", "linux/s390x"), Facts(img))[0] == "fail"
    single = image()  # not an index: its own platform
    assert run("required-platforms", ("linux/amd64",), Facts(single))[0] == "pass"


# ------------------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(
    ("statuses", "unreadable", "usage", "warn_only", "code"),
    [
        (("pass",), False, False, False, 0),
        (("pass", "warn", "skip"), False, False, False, 0),
        (("pass", "fail"), False, False, False, 1),
        (("fail",), False, False, True, 0),
        (("pass",), True, False, False, 3),
        (("fail",), True, False, True, 3),
        (("pass",), True, True, False, 2),
        ((), False, False, False, 0),
        (("pass", "undecidable"), False, False, False, 4),
        (("undecidable", "fail"), False, False, False, 1),
        (("undecidable",), False, False, True, 0),
        (("undecidable",), True, False, False, 3),
    ],
)
def test_exit_codes(
    statuses: tuple[str, ...], unreadable: bool, usage: bool, warn_only: bool, code: int
) -> None:
    findings = tuple(Finding("max-layers", s, "error") for s in statuses)  # type: ignore[arg-type]
    check = ImageCheck("oci:/x:latest", digest("x"), None, findings)
    assert exit_code([check], unreadable=unreadable, usage=usage, warn_only=warn_only) == code


# ------------------------------------------------------------------------------ dispatch (issue 11)


def test_every_rule_has_one_explicit_evaluator_and_no_name_lookup() -> None:
    """The evaluator dispatches by the explicit RULE_METHODS table (one entry per rule), not by building a
    method name from the rule id: a rule without an entry is found here, not at run time."""
    import inspect as pyinspect

    from ociinspect.policy import rules
    from ociinspect.policy.rules import RULE_METHODS, RULES

    assert set(RULE_METHODS) == set(RULES)
    assert "getattr(" not in pyinspect.getsource(rules._Evaluator.run)
