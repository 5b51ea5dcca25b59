"""The command line over a policy: rule flags, ``--disable``, ``--severity`` (:func:`with_flags`; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ociinspect.errors import PolicyError
from ociinspect.policy.rules import RULES, Origin, Policy, RuleConfig, Severity
from ociinspect.policy.values import parse_value

__all__ = ["LIST_FLAGS", "with_flags"]

#: the command-line flag of each list rule: singular and repeatable (``--forbidden-path GLOB``), with its metavar
LIST_FLAGS: Mapping[str, tuple[str, str]] = {
    "forbidden-paths": ("--forbidden-path", "GLOB"),
    "required-labels": ("--required-label", "KEY"),
    "required-annotations": ("--required-annotation", "KEY"),
    "allowed-base-images": ("--allowed-base-image", "REF|DIGEST"),
    "allowed-platforms": ("--allowed-platform", "OS/ARCH[/VARIANT]"),
    "required-platforms": ("--required-platform", "OS/ARCH[/VARIANT]"),
}


def with_flags(
    policy: Policy,
    flags: Mapping[str, object],
    *,
    disabled: Sequence[str] = (),
    severities: Sequence[tuple[str, str]] = (),
    baseline: str | None = None,
    growth_basis: str | None = None,
) -> Policy:
    """``policy`` with the command line applied: a rule flag replaces the rule's threshold (its severity is
    kept), ``--disable`` turns rules off, ``--severity RULE=LEVEL`` changes a severity.  Raises
    :class:`PolicyError` for a bad value, and when no rule at all is left to check."""
    overrides = []
    for rule, raw in flags.items():
        if rule not in RULES:
            known = ", ".join(sorted(RULES))
            raise PolicyError(f"unknown rule {rule!r}", hint=f"the rules are: {known} (docs/policy.md)")
        flag = LIST_FLAGS[rule][0] if rule in LIST_FLAGS else f"--{rule}"
        try:
            value = parse_value(rule, raw)
        except ValueError as exc:
            raise PolicyError(f"{flag}: {exc}", hint=f"see ociinspect check --help ({flag})") from None
        current = policy.rules.get(rule)
        severity: Severity = current.severity if current is not None else "error"
        overrides.append(
            RuleConfig(rule, value, severity, Origin(flag), raw if isinstance(raw, str) else None)
        )
    for rule in disabled:
        current = policy.rules.get(rule)
        severity = current.severity if current is not None else "error"
        overrides.append(RuleConfig(rule, None, severity, Origin(f"--disable {rule}")))
    if growth_basis not in (None, "compressed", "uncompressed"):
        raise PolicyError(f"--growth-basis {growth_basis}: must be compressed or uncompressed")
    result = policy.merged(
        overrides,
        baseline=baseline or policy.baseline,
        growth_basis=growth_basis or policy.growth_basis,
        format=policy.format if policy.source else "flags",
    )
    for rule, level in severities:
        if rule not in result.rules:
            raise PolicyError(
                f"--severity {rule}={level}: {rule} is not configured",
                hint=f"set it in the policy or with its flag, e.g. --{rule} …",
            )
        result = result.with_severity(rule, "warning" if level == "warning" else "error")
    if not result.rules:
        raise PolicyError(
            "no rules to check: no policy file was found and no rule flag was given",
            hint="create .ociinspect.toml with a [check] table (docs/policy.md), keep dive's .dive-ci here, "
            "or pass rules as flags, e.g. --max-compressed-size 200MB",
        )
    return result
