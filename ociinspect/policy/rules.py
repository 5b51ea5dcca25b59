"""Pre-push checks: the rules of a policy, evaluated against one image into findings.  Pure, no I/O.

A :class:`Policy` holds one :class:`RuleConfig` per configured rule (its threshold, severity ``error`` or
``warning``, and where it was set); :func:`evaluate` turns a policy and the :class:`Facts` of one image into an
:class:`ImageCheck`: one :class:`Finding` per configured rule, each ``pass``, ``warn`` (violated, severity
``warning``), ``fail`` (violated, severity ``error``), ``skip`` (disabled, or nothing to compare with) or
``undecidable`` (a size the rule needs is unknown or ambiguous: the cheap figure cannot settle it, ``--exact`` can;
such a rule neither passes nor fails on a guess).
Findings carry numbers only (bytes as ``int``, ratios as ``float``); :mod:`ociinspect.reports.ci` words them.

The rules (``docs/policy.md``), all "at the limit passes":

============================== ============================================================ =================
rule                           fails when                                                   reads
============================== ============================================================ =================
max-compressed-size            Σ layer blob sizes (bytes, as pushed) > limit                manifest
max-uncompressed-size          Σ uncompressed layer sizes (bytes) > limit                   trailers/scan
max-layers                     number of layers > limit                                     manifest
max-layer-size                 largest layer blob (bytes) > limit                           manifest
max-layer-uncompressed-size    largest uncompressed layer (bytes) > limit                   trailers/scan
lowest-efficiency              dive's efficiency < limit (ratio 0–1)                        layer contents
highest-wasted-bytes           dive's wasted bytes > limit                                  layer contents
highest-user-wasted-percent    dive's wasted / user bytes > limit (ratio 0–1, as dive)      layer contents
max-duplicate-bytes            bytes in extra copies of identical files > limit            contents + hashes
max-growth-bytes               size − baseline's size (bytes) > limit                       baseline manifest
max-growth-percent             (size − baseline's) / baseline's × 100 > limit               baseline manifest
forbidden-paths                any layer holds a path matching a glob (even if deleted later) layer contents
required-labels                a config label is missing or empty                           config
required-annotations           a manifest annotation is missing or empty                    manifest
non-root-user                  the config's User is empty, ``root`` or uid 0                config
allowed-base-images            the base (annotations, else layer prefix) is not allowed     bases' manifests
allowed-platforms              the index offers a platform not in the list                  index
required-platforms             a listed platform is missing from the index                  index
============================== ============================================================ =================

dive's three rules keep dive 0.13.1's comparisons exactly (``wagoodman/dive`` ``runtime/ci/rule.go``): efficiency
fails when ``threshold > efficiency``; wasted bytes when ``wasted > threshold``; user wasted percent when
``threshold < wasted / user bytes``, where dive's ratio is NaN (never fails) when both are 0 and +Inf (always
fails) when only the user bytes are 0.

Cost of :func:`evaluate`: O(layers + entries × patterns) for the path rules; dive's analysis
(:func:`ociinspect.analyzers.waste.analyze`, ~0.3 s per 100 000 entries) only when a content rule needs it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from ociinspect.analyzers import sharing
from ociinspect.analyzers.diff import GrowthNode, ImageDiff
from ociinspect.analyzers.waste import WasteReport, analyze, flatten
from ociinspect.errors import ExitCode, OciInspectError
from ociinspect.model.entries import Entry
from ociinspect.model.image import Image, Platform
from ociinspect.model.record import record
from ociinspect.model.textsafe import parse_uint

__all__ = [
    "GROWTH_RULES",
    "RULES",
    "RULE_METHODS",
    "Facts",
    "Finding",
    "GrowthExplanation",
    "GrowthPath",
    "ImageCheck",
    "Need",
    "Origin",
    "Policy",
    "RuleConfig",
    "RuleSpec",
    "Severity",
    "Status",
    "Value",
    "compile_glob",
    "evaluate",
    "exit_code",
    "explain_growth",
    "growth_explanation",
    "is_root_user",
    "platform_matches",
]

Severity = Literal["error", "warning"]
Status = Literal["pass", "warn", "fail", "skip", "undecidable"]
Kind = Literal["bytes", "count", "ratio", "percent", "paths", "keys", "flag", "bases", "platforms"]
Need = Literal["content", "hashes", "baseline", "bases", "sizes"]
Value = int | float | bool | tuple[str, ...]
Measured = int | float | str | list[str] | None

_BASE_NAME = sharing.BASE_NAME
_BASE_DIGEST = sharing.BASE_DIGEST


@record
class RuleSpec:
    """What a rule is: its id, the kind of threshold it takes, what it reads, and dive's name for it."""

    id: str
    kind: Kind
    title: str
    needs: frozenset[Need] = frozenset()
    dive_key: str | None = None
    dive_default: str | None = None

    @property
    def reads_content(self) -> bool:
        """True when the rule needs the layers' file lists (each layer streamed once, cached by digest)."""
        return "content" in self.needs


def _spec(
    id: str, kind: Kind, title: str, *needs: Need, dive: str | None = None, default: str | None = None
) -> RuleSpec:
    return RuleSpec(id, kind, title, frozenset(needs), dive, default)


#: Every rule, in the order findings are reported.
RULES: Mapping[str, RuleSpec] = {
    s.id: s
    for s in (
        _spec("max-compressed-size", "bytes", "Image size as pushed (sum of compressed layer blobs)"),
        _spec("max-uncompressed-size", "bytes", "Image size unpacked (sum of uncompressed layers)", "sizes"),
        _spec("max-layers", "count", "Number of layers"),
        _spec("max-layer-size", "bytes", "Largest layer blob (compressed)"),
        _spec("max-layer-uncompressed-size", "bytes", "Largest layer unpacked", "sizes"),
        _spec(
            "lowest-efficiency",
            "ratio",
            "dive's image efficiency (lowest allowed)",
            "content",
            dive="lowestEfficiency",
            default="0.9",
        ),
        _spec(
            "highest-wasted-bytes",
            "bytes",
            "dive's wasted bytes (highest allowed)",
            "content",
            dive="highestWastedBytes",
            default="disabled",
        ),
        _spec(
            "highest-user-wasted-percent",
            "ratio",
            "dive's wasted bytes relative to the bytes added on top of the base layer (highest allowed)",
            "content",
            dive="highestUserWastedPercent",
            default="0.1",
        ),
        _spec(
            "max-duplicate-bytes", "bytes", "Bytes in extra copies of identical files", "content", "hashes"
        ),
        _spec("max-growth-bytes", "bytes", "Growth against the baseline image, in bytes", "baseline"),
        _spec("max-growth-percent", "percent", "Growth against the baseline image, in percent", "baseline"),
        _spec("forbidden-paths", "paths", "Paths that must not be in any layer", "content"),
        _spec("required-labels", "keys", "Config labels that must be set"),
        _spec("required-annotations", "keys", "Manifest annotations that must be set"),
        _spec("non-root-user", "flag", "The image must not run as root"),
        _spec("allowed-base-images", "bases", "The image must be built on one of these bases", "bases"),
        _spec("allowed-platforms", "platforms", "Every platform of the index must be one of these"),
        _spec("required-platforms", "platforms", "Each of these platforms must be in the index"),
    )
}


@record
class Origin:
    """Where a rule was configured: ``where`` is shown to users (``.ociinspect.toml line 4``, ``--max-layers``,
    ``dive default``); ``path``/``line`` point into a policy file when there is one (SARIF, annotations)."""

    where: str
    path: str | None = None
    line: int | None = None


@record
class RuleConfig:
    """One configured rule.  ``value`` is ``None`` when the rule is disabled (dive's ``disabled``); sizes are
    ``int`` bytes, ratios ``float`` (0–1), percents ``float``, lists ``tuple[str, ...]``.  ``text`` is the
    threshold as written (``"20Mb"``), for messages."""

    rule: str
    value: Value | None
    severity: Severity = "error"
    origin: Origin | None = None
    text: str | None = None

    @property
    def enabled(self) -> bool:
        return self.value is not None and self.value is not False

    @property
    def spec(self) -> RuleSpec:
        return RULES[self.rule]


@dataclasses.dataclass(frozen=True)
class Policy:
    """The rules to check (keyed by rule id, in :data:`RULES` order) and where they came from.

    ``format`` is ``toml`` (``.ociinspect.toml``), ``pyproject``, ``dive`` (a dive CI file) or ``flags``;
    ``notes`` are things a user should know about how the file was read (dive defaults applied, keys dive
    ignores).  ``growth_basis`` says which size the growth rules compare.
    """

    rules: Mapping[str, RuleConfig] = dataclasses.field(default_factory=dict)
    source: str | None = None
    format: Literal["toml", "pyproject", "dive", "flags"] = "flags"
    baseline: str | None = None
    growth_basis: Literal["compressed", "uncompressed"] = "compressed"
    notes: tuple[str, ...] = ()

    def enabled(self) -> list[RuleConfig]:
        return [c for c in self.rules.values() if c.enabled]

    def needs(self, need: Need) -> bool:
        """True when an enabled rule needs ``need`` (``content``: stream the layers; ``hashes``: hash files
        while doing so; ``baseline``/``bases``: load more images; ``sizes``: uncompressed sizes)."""
        if need == "sizes" and self.growth_basis == "uncompressed" and self.needs("baseline"):
            return True
        return any(need in c.spec.needs for c in self.enabled())

    def content_rules(self) -> list[str]:
        return [c.rule for c in self.enabled() if c.spec.reads_content]

    def merged(self, overrides: Iterable[RuleConfig], **changes: object) -> Policy:
        """This policy with ``overrides`` replacing (or adding) rules, and other fields changed."""
        rules = dict(self.rules)
        for o in overrides:
            rules[o.rule] = o
        ordered = {r: rules[r] for r in RULES if r in rules}
        return dataclasses.replace(self, rules=ordered, **changes)  # type: ignore[arg-type]

    def with_severity(self, rule: str, severity: Severity) -> Policy:
        if rule not in self.rules:
            return self
        return self.merged([dataclasses.replace(self.rules[rule], severity=severity)])


@dataclasses.dataclass(frozen=True)
class Facts:
    """Everything :func:`evaluate` may look at for one image.

    ``layers``: each layer's tar entries, bottom first (``None`` when the contents were not read); ``hashed``
    says they carry content hashes.  ``layer_sizes``: exact uncompressed sizes from a scan, per layer, used
    where the image's own estimate is unknown.  ``baseline``: the baseline image (same platform), ``None`` when
    none was given; ``baseline_note`` explains why it is missing (e.g. not found).  ``bases``: the allowed
    base images that could be loaded (same platform).
    """

    image: Image
    layers: Sequence[Sequence[Entry]] | None = None
    hashed: bool = False
    layer_sizes: Sequence[int | None] | None = None
    baseline: Image | None = None
    baseline_note: str | None = None
    bases: Sequence[Image] = ()


@record
class GrowthPath:
    """One line of a growth explanation: a directory of the diff's growth tree (``kind`` ``dir``, ``changed``
    paths below it) or a file added or grown (``added`` / ``grown``); ``delta`` in bytes (tar header sizes,
    image − baseline)."""

    path: str
    delta: int
    kind: Literal["dir", "added", "grown"]
    changed: int = 1


@record
class GrowthExplanation:
    """Why a growth rule was violated, from ``diff baseline image`` (:mod:`ociinspect.analyzers.diff`).

    ``paths``: the largest growing directories, then the largest added or grown files (bytes, uncompressed
    file sizes); ``files_delta``: the net byte delta of every changed path; ``changed``: how many paths
    changed; ``layers``: (shared, only in the baseline, only in the image) layer counts; ``added_layers_size``:
    compressed bytes of the image's layers above the shared prefix.  ``unavailable`` says why there is no
    explanation (a layer unreadable, the deadline …): the rule's verdict stands without it."""

    paths: tuple[GrowthPath, ...] = ()
    files_delta: int | None = None
    changed: int = 0
    layers: tuple[int, int, int] | None = None
    added_layers_size: int | None = None
    unavailable: str | None = None


@record
class Finding:
    """The outcome of one rule on one image.

    ``measured`` is what was measured (bytes ``int``, ratio ``float``, a count, or a list of offending items);
    ``limit`` the threshold in the same unit; ``subject`` qualifies the measurement (the layer index of the
    largest layer, the baseline reference, the base that was found …); ``details`` lists offending items
    (paths with their layer, missing labels, platforms); ``note`` explains a skip or an unmeasurable value.
    """

    rule: str
    status: Status
    severity: Severity
    measured: Measured = None
    limit: Measured = None
    subject: str | None = None
    details: tuple[str, ...] = ()
    note: str | None = None
    origin: Origin | None = None
    text: str | None = None
    explanation: GrowthExplanation | None = None

    @property
    def reads_content(self) -> bool:
        return RULES[self.rule].reads_content


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """All findings for one image; ``status`` is the worst of them (fail > undecidable > warn > pass).

    A rule of severity ``warning`` that is undecidable counts as a warning here (it never gates)."""

    reference: str
    digest: str
    platform: str | None
    findings: tuple[Finding, ...]
    content_read: bool = False

    @property
    def status(self) -> Literal["pass", "warn", "fail", "undecidable"]:
        statuses = {f.status for f in self.findings}
        if "fail" in statuses:
            return "fail"
        if any(f.status == "undecidable" and f.severity == "error" for f in self.findings):
            return "undecidable"
        return "warn" if statuses & {"warn", "undecidable"} else "pass"


def exit_code(
    checks: Sequence[ImageCheck],
    *,
    unreadable: bool = False,
    usage: bool = False,
    warn_only: bool,
    errors: Iterable[OciInspectError] = (),
) -> int:
    """``check``'s exit code by the one rule of every command (:func:`ociinspect.session.exit_code`, a gate):
    1 a rule failed (never hidden by an unreadable image; 0 with ``warn_only``), else 2 bad usage or policy,
    3 an image (or the baseline, or a base) could not be read (``errors``, or ``unreadable``/``usage`` as flags),
    4 no rule failed but a rule of severity ``error`` is undecidable (a size it needs is unknown or ambiguous:
    rerun with ``--exact``; 0 with ``warn_only``), else 0 (warnings allowed)."""
    from ociinspect.session import exit_code as one_rule

    codes: list[OciInspectError | ExitCode] = [*errors]
    codes += [ExitCode.USAGE] * usage + [ExitCode.UNREADABLE] * unreadable
    statuses = {c.status for c in checks}
    return int(
        one_rule(
            codes,
            read=len(checks),
            failed=not warn_only and "fail" in statuses,
            undecidable=not warn_only and "undecidable" in statuses,
            gate=True,
        )
    )


# ----------------------------------------------------------------------------------------------- globs

_GLOB_CACHE: dict[str, re.Pattern[str]] = {}
_HIDDEN = ", deleted or replaced later but still stored in that layer"


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A path glob as a regular expression over absolute paths (``/etc/passwd``).

    ``*`` matches within one path component (dotfiles included), ``?`` one character but ``/``, ``[…]`` a
    character class (``[!…]`` negated), ``**`` as a whole component any number of components (zero included:
    ``**/id_rsa`` matches ``/id_rsa`` and ``/root/.ssh/id_rsa``); a trailing ``/**`` matches everything below a
    directory but not the directory itself.  A pattern without a leading ``/`` is anchored at the root.  Raises
    ``ValueError`` for an unterminated ``[``.  Cost: compiled once per pattern.
    """
    cached = _GLOB_CACHE.get(pattern)
    if cached is not None:
        return cached
    pat = pattern if pattern.startswith("/") else "/" + pattern
    parts = pat.split("/")[1:]
    out = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out += "/.+" if last else "(?:/[^/]+)*"
            continue
        out += "/" + _glob_component(part, pattern)
    regex = re.compile(out + "/?" if pattern.endswith("/") else out)
    _GLOB_CACHE[pattern] = regex
    return regex


def _glob_component(part: str, pattern: str) -> str:
    out = ""
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            while i + 1 < len(part) and part[i + 1] == "*":
                i += 1
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"glob {pattern!r}: '[' without a closing ']'")
            body = part[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


# ----------------------------------------------------------------------------------------------- helpers


def is_root_user(user: str | None) -> bool:
    """True when a config ``User`` runs as root: empty (the default), ``root`` or uid 0, with any group."""
    name = (user or "").split(":", 1)[0].strip()
    return name in ("", "root") or parse_uint(name, max_digits=64) == 0


def platform_matches(offered: Platform, wanted: str) -> bool:
    """``wanted`` is ``os/arch[/variant]``; a missing variant matches any, arm64's default variant is v8."""
    return offered.matches(Platform.parse(wanted))


def _uncompressed(facts: Facts) -> list[int | None]:
    sizes: list[int | None] = []
    for i, layer in enumerate(facts.image.layers):
        value = layer.uncompressed.value
        if value is None and facts.layer_sizes is not None and i < len(facts.layer_sizes):
            value = facts.layer_sizes[i]
        sizes.append(value)
    return sizes


def _total(sizes: Sequence[int | None]) -> int | None:
    return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def _lower_bound(facts: Facts, index: int, size: int | None) -> int:
    """What a layer is known to weigh at least: its size, else its smallest ambiguous candidate, else 0."""
    if size is not None:
        return size
    candidates = facts.image.layers[index].uncompressed.candidates
    return min(candidates) if candidates else 0


def _unknown_note(facts: Facts, sizes: Sequence[int | None]) -> str:
    """Which layers' uncompressed sizes are unknown (ambiguous ones with their candidates), and the hint."""
    unknown = [i for i, s in enumerate(sizes) if s is None]
    ambiguous = [
        f"layer {i}: {' or '.join(str(c) for c in facts.image.layers[i].uncompressed.candidates)} bytes"
        for i in unknown
        if facts.image.layers[i].uncompressed.ambiguous
    ]
    note = f"uncompressed size of layer(s) {', '.join(str(i) for i in unknown)} unknown"
    if ambiguous:
        note += " (ambiguous: " + "; ".join(ambiguous) + ")"
    return note + ": rerun with --exact"


def _image_size(image: Image, basis: str, facts: Facts | None = None) -> int | None:
    if basis == "compressed":
        return image.compressed_size
    if facts is not None:
        return _total(_uncompressed(facts))
    return image.uncompressed_size


class _Evaluator:
    """Evaluates one policy on one image's facts; dive's analysis and the flattened tree are computed once."""

    def __init__(self, policy: Policy, facts: Facts) -> None:
        self.policy = policy
        self.facts = facts
        self._waste: WasteReport | None = None

    @property
    def waste(self) -> WasteReport | None:
        if self._waste is None and self.facts.layers is not None:
            self._waste = analyze(self.facts.layers, hashed=self.facts.hashed)
        return self._waste

    def finding(
        self,
        cfg: RuleConfig,
        violated: bool | None,
        *,
        measured: Measured = None,
        limit: Measured = None,
        subject: str | None = None,
        details: tuple[str, ...] = (),
        note: str | None = None,
    ) -> Finding:
        """``violated``: True → fail/warn per severity; False → pass; None → could not be measured, which
        counts as violated (a gate that cannot measure must not pass silently) and says why in ``note``."""
        if violated is None or violated:
            status: Status = "fail" if cfg.severity == "error" else "warn"
        else:
            status = "pass"
        return Finding(
            cfg.rule, status, cfg.severity, measured, limit, subject, details, note, cfg.origin, cfg.text
        )

    def run(self, cfg: RuleConfig) -> Finding:
        if not cfg.enabled:
            return Finding(cfg.rule, "skip", cfg.severity, note="disabled", origin=cfg.origin, text=cfg.text)
        if cfg.spec.reads_content and self.facts.layers is None:
            return self.finding(cfg, None, note="the layer contents were not read")
        return RULE_METHODS[cfg.rule](self, cfg)

    # -- sizes

    def _max(
        self,
        cfg: RuleConfig,
        measured: int | None,
        *,
        note: str | None = None,
        subject: str | None = None,
        details: tuple[str, ...] = (),
    ) -> Finding:
        assert isinstance(cfg.value, int | float)
        if measured is None:
            return self.finding(
                cfg, None, limit=cfg.value, note=note or "could not be measured", subject=subject
            )
        return self.finding(
            cfg, measured > cfg.value, measured=measured, limit=cfg.value, subject=subject, details=details
        )

    def rule_max_compressed_size(self, cfg: RuleConfig) -> Finding:
        return self._max(cfg, self.facts.image.compressed_size)

    def undecidable(self, cfg: RuleConfig, note: str, *, subject: str | None = None) -> Finding:
        """A rule whose needed size is unknown or ambiguous: neither pass nor fail on a guess (``note`` says
        which figure and ends with the hint ``rerun with --exact``)."""
        limit = cfg.value if isinstance(cfg.value, int | float) else None
        return Finding(
            cfg.rule, "undecidable", cfg.severity, None, limit, subject, (), note, cfg.origin, cfg.text
        )

    def rule_max_uncompressed_size(self, cfg: RuleConfig) -> Finding:
        sizes = _uncompressed(self.facts)
        total = _total(sizes)
        if total is not None:
            return self._max(cfg, total)
        assert isinstance(cfg.value, int | float)
        floor = sum(_lower_bound(self.facts, i, s) for i, s in enumerate(sizes))
        note = _unknown_note(self.facts, sizes)
        if floor > cfg.value:  # decided even so: the known part alone is over the limit
            return self.finding(cfg, True, measured=floor, limit=cfg.value, subject="at least", note=note)
        return self.undecidable(cfg, note)

    def rule_max_layers(self, cfg: RuleConfig) -> Finding:
        return self._max(cfg, len(self.facts.image.layers))

    def rule_max_layer_size(self, cfg: RuleConfig) -> Finding:
        layers = self.facts.image.layers
        if not layers:
            return self._max(cfg, 0)
        biggest = max(layers, key=lambda lyr: (lyr.size, -lyr.index))
        return self._max(cfg, biggest.size, subject=_layer_label(self.facts.image, biggest.index))

    def rule_max_layer_uncompressed_size(self, cfg: RuleConfig) -> Finding:
        sizes = _uncompressed(self.facts)
        if not sizes:
            return self._max(cfg, 0)
        if any(s is None for s in sizes):
            assert isinstance(cfg.value, int | float)
            floors = [_lower_bound(self.facts, i, s) for i, s in enumerate(sizes)]
            index = max(range(len(floors)), key=lambda i: (floors[i], -i))
            note = _unknown_note(self.facts, sizes)
            if floors[index] > cfg.value:  # decided even so: one layer is over the limit at least
                label = _layer_label(self.facts.image, index)
                return self.finding(
                    cfg, True, measured=floors[index], limit=cfg.value, subject=label, note=note
                )
            return self.undecidable(cfg, note)
        index = max(range(len(sizes)), key=lambda i: (sizes[i] or 0, -i))
        return self._max(cfg, sizes[index], subject=_layer_label(self.facts.image, index))

    # -- dive

    def rule_lowest_efficiency(self, cfg: RuleConfig) -> Finding:
        assert self.waste is not None and isinstance(cfg.value, float)
        efficiency = self.waste.dive.efficiency
        return self.finding(cfg, cfg.value > efficiency, measured=efficiency, limit=cfg.value)

    def rule_highest_wasted_bytes(self, cfg: RuleConfig) -> Finding:
        assert self.waste is not None and isinstance(cfg.value, int)
        wasted = self.waste.dive.wasted_bytes
        return self.finding(cfg, wasted > cfg.value, measured=wasted, limit=cfg.value)

    def rule_highest_user_wasted_percent(self, cfg: RuleConfig) -> Finding:
        assert self.waste is not None and isinstance(cfg.value, float)
        dive = self.waste.dive
        ratio = dive.user_wasted_ratio
        if ratio is None:  # dive divides by a zero user size: NaN when nothing is wasted, else +Inf
            ratio = math.nan if dive.wasted_bytes == 0 else math.inf
        shown: float | str = ratio if math.isfinite(ratio) else ("NaN" if math.isnan(ratio) else "+Inf")
        return self.finding(
            cfg,
            cfg.value < ratio,
            measured=shown,
            limit=cfg.value,
            subject=f"{dive.wasted_bytes} wasted / {dive.user_size_bytes} user bytes",
        )

    def rule_max_duplicate_bytes(self, cfg: RuleConfig) -> Finding:
        assert self.waste is not None
        dups = self.waste.duplicates
        if dups is None:
            return self._max(cfg, None, note="file contents were not hashed")
        details = tuple(
            f"{d.size} bytes × {len(d.copies)}: "
            + ", ".join(f"/{p} (layer {k})" for k, p, _ in d.copies[:4])
            + (" …" if len(d.copies) > 4 else "")
            for d in dups[:10]
        )
        return self._max(cfg, sum(d.wasted_bytes for d in dups), details=details)

    # -- growth

    def _growth(self, cfg: RuleConfig) -> tuple[int, int] | Finding:
        facts = self.facts
        if facts.baseline is None:
            return Finding(
                cfg.rule,
                "skip",
                cfg.severity,
                limit=cfg.value if isinstance(cfg.value, int | float) else None,
                note=facts.baseline_note
                or "no baseline: pass --baseline REF (or set baseline in the policy)",
                origin=cfg.origin,
                text=cfg.text,
            )
        basis = self.policy.growth_basis
        now = _image_size(facts.image, basis, facts)
        before = _image_size(facts.baseline, basis)
        if now is None or before is None:
            which = [
                f"{what}: " + _unknown_note(f, _uncompressed(f))
                for what, f, size in (("image", facts, now), ("baseline", Facts(facts.baseline), before))
                if size is None
            ]
            return self.undecidable(cfg, "; ".join(which))
        return now, before

    def rule_max_growth_bytes(self, cfg: RuleConfig) -> Finding:
        sizes = self._growth(cfg)
        if isinstance(sizes, Finding):
            return sizes
        now, before = sizes
        assert self.facts.baseline is not None
        return self._max(
            cfg, now - before, subject=f"{self.facts.baseline.reference}: {before} → {now} bytes"
        )

    def rule_max_growth_percent(self, cfg: RuleConfig) -> Finding:
        sizes = self._growth(cfg)
        if isinstance(sizes, Finding):
            return sizes
        now, before = sizes
        assert self.facts.baseline is not None and isinstance(cfg.value, int | float)
        growth = now - before
        percent = growth * 100.0 / before if before else (0.0 if growth == 0 else math.inf)
        return self.finding(
            cfg,
            percent > cfg.value,
            measured=percent if math.isfinite(percent) else "+Inf",
            limit=cfg.value,
            subject=f"{self.facts.baseline.reference}: {before} → {now} bytes",
        )

    # -- contents

    def rule_forbidden_paths(self, cfg: RuleConfig) -> Finding:
        assert self.facts.layers is not None and isinstance(cfg.value, tuple)
        patterns = [(p, compile_glob(p)) for p in cfg.value]
        final = {f.path: f.layer for f in flatten(self.facts.layers)}
        hits: list[str] = []
        for k, entries in enumerate(self.facts.layers):
            for e in entries:
                if e.whiteout:
                    continue
                full = "/" + e.path
                for text, regex in patterns:
                    if regex.fullmatch(full):
                        kept = final.get(e.path) == k
                        hits.append(f"{full} (layer {k}{'' if kept else _HIDDEN}; {text})")
                        break
        return self.finding(cfg, bool(hits), measured=len(hits), limit=list(cfg.value), details=tuple(hits))

    # -- metadata

    def _required(self, cfg: RuleConfig, present: Mapping[str, str]) -> Finding:
        assert isinstance(cfg.value, tuple)
        missing = [k for k in cfg.value if k not in present]
        empty = [k for k in cfg.value if k in present and not present[k].strip()]
        details = tuple([f"{k}: missing" for k in missing] + [f"{k}: empty" for k in empty])
        return self.finding(
            cfg, bool(details), measured=missing + empty, limit=list(cfg.value), details=details
        )

    def rule_required_labels(self, cfg: RuleConfig) -> Finding:
        config = self.facts.image.config
        return self._required(cfg, config.labels if config is not None else {})

    def rule_required_annotations(self, cfg: RuleConfig) -> Finding:
        return self._required(cfg, self.facts.image.annotations)

    def rule_non_root_user(self, cfg: RuleConfig) -> Finding:
        config = self.facts.image.config
        user = config.user if config is not None else None
        return self.finding(cfg, is_root_user(user), measured=user or "")

    def rule_allowed_base_images(self, cfg: RuleConfig) -> Finding:
        assert isinstance(cfg.value, tuple)
        image = self.facts.image
        name, digest = image.annotations.get(_BASE_NAME), image.annotations.get(_BASE_DIGEST)
        allowed = list(cfg.value)
        if name or digest:
            label = "@".join(x for x in (name, digest) if x)
            ok = any(_base_entry_matches(entry, name, digest) for entry in allowed)
            return self.finding(
                cfg,
                not ok,
                measured=label,
                limit=allowed,
                subject="org.opencontainers.image.base.* annotations",
            )
        for base in self.facts.bases:  # the very same layers: the image is the base itself
            if [lyr.diff_id or lyr.digest for lyr in base.layers] == [
                lyr.diff_id or lyr.digest for lyr in image.layers
            ]:
                return self.finding(cfg, False, measured=base.reference, limit=allowed, subject="same layers")
        report = sharing.analyze([image], bases=list(self.facts.bases))
        found = report.images[0].base
        if found is None:
            note = "no org.opencontainers.image.base.* annotations, and the layers do not start with an allowed base's"
            if len(self.facts.bases) < len(allowed):
                note += f" ({len(self.facts.bases)} of {len(allowed)} allowed bases could be loaded)"
            return self.finding(cfg, True, measured=None, limit=allowed, note=note)
        return self.finding(cfg, False, measured=found, limit=allowed, subject="layer prefix")

    # -- platforms

    def _platforms(self) -> list[Platform]:
        return list(self.facts.image.platforms)

    def rule_allowed_platforms(self, cfg: RuleConfig) -> Finding:
        assert isinstance(cfg.value, tuple)
        offered = self._platforms()
        extra = [str(p) for p in offered if not any(platform_matches(p, w) for w in cfg.value)]
        return self.finding(
            cfg,
            bool(extra),
            measured=[str(p) for p in offered],
            limit=list(cfg.value),
            details=tuple(f"{p}: not allowed" for p in extra),
        )

    def rule_required_platforms(self, cfg: RuleConfig) -> Finding:
        assert isinstance(cfg.value, tuple)
        offered = self._platforms()
        missing = [w for w in cfg.value if not any(platform_matches(p, w) for p in offered)]
        return self.finding(
            cfg,
            bool(missing),
            measured=[str(p) for p in offered],
            limit=list(cfg.value),
            details=tuple(f"{w}: missing" for w in missing),
        )


#: rule id -> the method that evaluates it: one explicit entry per rule of :data:`RULES` (a test holds them equal)
RULE_METHODS: Mapping[str, Callable[[_Evaluator, RuleConfig], Finding]] = {
    "max-compressed-size": _Evaluator.rule_max_compressed_size,
    "max-uncompressed-size": _Evaluator.rule_max_uncompressed_size,
    "max-layers": _Evaluator.rule_max_layers,
    "max-layer-size": _Evaluator.rule_max_layer_size,
    "max-layer-uncompressed-size": _Evaluator.rule_max_layer_uncompressed_size,
    "lowest-efficiency": _Evaluator.rule_lowest_efficiency,
    "highest-wasted-bytes": _Evaluator.rule_highest_wasted_bytes,
    "highest-user-wasted-percent": _Evaluator.rule_highest_user_wasted_percent,
    "max-duplicate-bytes": _Evaluator.rule_max_duplicate_bytes,
    "max-growth-bytes": _Evaluator.rule_max_growth_bytes,
    "max-growth-percent": _Evaluator.rule_max_growth_percent,
    "forbidden-paths": _Evaluator.rule_forbidden_paths,
    "required-labels": _Evaluator.rule_required_labels,
    "required-annotations": _Evaluator.rule_required_annotations,
    "non-root-user": _Evaluator.rule_non_root_user,
    "allowed-base-images": _Evaluator.rule_allowed_base_images,
    "allowed-platforms": _Evaluator.rule_allowed_platforms,
    "required-platforms": _Evaluator.rule_required_platforms,
}


#: the rules that measure growth against the baseline: explained by a diff when violated
GROWTH_RULES = ("max-growth-bytes", "max-growth-percent")


def _growing_dirs(root: GrowthNode) -> list[GrowthNode]:
    """Directories that grew, without those a single child explains entirely (same delta and count)."""
    out: list[GrowthNode] = []

    def walk(n: GrowthNode) -> None:
        for c in n.children:
            walk(c)
        if n.path == "/" or n.delta <= 0:
            return
        if any(c.delta == n.delta and c.changed == n.changed for c in n.children):
            return
        out.append(n)

    walk(root)
    return out


def growth_explanation(diff: ImageDiff, top: int = 5) -> GrowthExplanation:
    """The top ``top`` growing directories of ``diff``'s growth tree (baseline = A, image = B) and the top
    ``top`` added or grown files, largest delta first (ties by path).  Pure; cost O(changed paths)."""
    dirs = sorted(_growing_dirs(diff.growth), key=lambda n: (-n.delta, n.path))[:top]
    files = [
        c
        for c in (*diff.files.added, *diff.files.modified)
        if c.delta > 0 and c.b is not None and not c.b.is_dir
    ]
    files.sort(key=lambda c: (-c.delta, c.path))
    paths = [GrowthPath(n.path, n.delta, "dir", n.changed) for n in dirs]
    paths += [GrowthPath(c.path, c.delta, "added" if c.a is None else "grown") for c in files[:top]]
    layers = diff.layers
    return GrowthExplanation(
        paths=tuple(paths),
        files_delta=diff.growth.delta,
        changed=len(diff.files.changed),
        layers=(len(layers.shared), len(layers.only_a), len(layers.only_b)),
        added_layers_size=sum(x.size for x in layers.only_b),
    )


def explain_growth(check: ImageCheck, explanation: GrowthExplanation) -> ImageCheck:
    """``check`` with ``explanation`` attached to its violated (``fail`` / ``warn``) growth findings; the
    findings' verdicts and numbers are unchanged.  Pure."""
    findings = tuple(
        dataclasses.replace(f, explanation=explanation)
        if f.rule in GROWTH_RULES and f.status in ("fail", "warn")
        else f
        for f in check.findings
    )
    return dataclasses.replace(check, findings=findings)


def _layer_label(image: Image, index: int) -> str:
    layer = image.layers[index]
    created = layer.history.created_by if layer.history and layer.history.created_by else ""
    created = " ".join(created.split())
    if len(created) > 60:
        created = created[:59] + "…"
    return f"layer {index} {layer.digest[:19]}" + (f" ({created})" if created else "")


def _base_entry_matches(entry: str, name: str | None, digest: str | None) -> bool:
    """An allowed-base entry against the annotations: a bare digest matches the base digest; a reference
    matches the base name (registry and repository; its tag and digest too when the entry has them)."""
    from ociinspect.model.reference import parse_reference

    if entry.startswith("sha256:") or entry.startswith("sha512:"):
        return entry == digest
    if name is None:
        return False
    try:
        want, have = parse_reference(entry), parse_reference(name)
    except Exception:  # an annotation that is not a reference: compare the text
        return entry == name
    if (want.registry, want.repository) != (have.registry, have.repository):
        return False
    if want.tag and want.tag != have.tag:
        return False
    return not (want.digest and want.digest not in (have.digest, digest))


def evaluate(policy: Policy, facts: Facts) -> ImageCheck:
    """Every configured rule of ``policy`` on one image (see the module docstring for costs)."""
    ev = _Evaluator(policy, facts)
    image = facts.image
    return ImageCheck(
        reference=image.reference,
        digest=image.digest,
        platform=str(image.platform) if image.platform else None,
        findings=tuple(ev.run(cfg) for cfg in policy.rules.values()),
        content_read=facts.layers is not None,
    )
