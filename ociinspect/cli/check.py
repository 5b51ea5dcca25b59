"""``ociinspect check``: gate an image on a policy before it is pushed (``docs/ci.md``, ``docs/policy.md``).

The run itself (loading, scanning, evaluating) is :func:`ociinspect.policy.run.gather`; this module parses the
command line, emits the result and its side reports, and exits by the one rule.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ociinspect.cli import cli
from ociinspect.cli.options import (
    emit,
    image_options,
    output_options,
    progress_bar,
    report_error,
    scan_options,
    write_file,
)
from ociinspect.errors import UsageError
from ociinspect.policy.files import load_policy
from ociinspect.policy.flags import LIST_FLAGS, with_flags
from ociinspect.policy.rules import RULES, Policy, exit_code
from ociinspect.policy.run import gather
from ociinspect.reports import render
from ociinspect.reports.ci import FORMATS, check_document
from ociinspect.session import ReadContext, ScanSettings

__all__ = ["check"]

F = TypeVar("F", bound=Callable[..., Any])

#: the formats ``--report FORMAT=FILE`` writes (``text`` is the deprecated alias of ``table``)
REPORT_FORMATS = ("table", *(f for f in FORMATS if f not in ("text", "table")))

_METAVAR = {"bytes": "SIZE", "count": "N", "ratio": "RATIO", "percent": "PERCENT"}


def _rule_options(func: F) -> F:
    """One flag per rule (``--max-layers N``, ``--forbidden-path GLOB`` …, dive's camelCase names too); the
    command receives ``rule_flags: dict[rule id, raw value]`` with only the flags that were given."""
    names: dict[str, str] = {}
    for spec in reversed(list(RULES.values())):
        param = "rule_" + spec.id.replace("-", "_")
        names[param] = spec.id
        if spec.kind == "flag":
            func = click.option(f"--{spec.id}/--allow-root-user", param, default=None, help=spec.title + ".")(
                func
            )
        elif spec.id in LIST_FLAGS:
            flag, metavar = LIST_FLAGS[spec.id]
            func = click.option(
                flag,
                param,
                multiple=True,
                metavar=metavar,
                help=f"{spec.title} (repeatable; replaces the policy's list).",
            )(func)
        else:
            decls = [f"--{spec.id}", *([f"--{spec.dive_key}"] if spec.dive_key else [])]
            above = f"Fail above {_METAVAR[spec.kind]}: " if spec.id.startswith("max-") else ""
            help_text = above + spec.title + ("; 'disabled' turns it off" if spec.dive_key else "") + "."
            func = click.option(*decls, param, metavar=_METAVAR[spec.kind], help=help_text)(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags: dict[str, object] = {}
        for param, rule in names.items():
            value = kwargs.pop(param)
            if value is not None and value != ():
                flags[rule] = list(value) if isinstance(value, tuple) else value
        return func(*args, rule_flags=flags, **kwargs)

    return wrapper  # type: ignore[return-value]


def _report_spec(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[tuple[str, Path]]:
    out = []
    for value in values:
        fmt, sep, path = value.partition("=")
        fmt = "table" if fmt == "text" else fmt
        if not sep or fmt not in REPORT_FORMATS or not path:
            raise click.BadParameter(
                f"{value!r} is not FORMAT=FILE with FORMAT one of {', '.join(REPORT_FORMATS)}"
            )
        out.append((fmt, Path(path)))
    return out


def _severity_spec(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> list[tuple[str, str]]:
    out = []
    for value in values:
        rule, sep, level = value.partition("=")
        if not sep or rule not in RULES or level not in ("error", "warning"):
            raise click.BadParameter(f"{value!r} is not RULE=error|warning with a known rule")
        out.append((rule, level))
    return out


def _github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS", "").lower() in ("true", "1")


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--policy",
    "--ci-config",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy file: .ociinspect.toml, pyproject.toml or dive's .dive-ci (default: found from the working directory up).",
)
@click.option("--no-policy", is_flag=True, help="Ignore policy files; check only the rules given as flags.")
@_rule_options
@click.option(
    "--disable",
    "disabled",
    multiple=True,
    type=click.Choice(list(RULES)),
    metavar="RULE",
    help="Turn a rule of the policy off (repeatable).",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    callback=_severity_spec,
    metavar="RULE=error|warning",
    help="Change a rule's severity; a warning never fails the build (repeatable).",
)
@click.option("--baseline", metavar="REF", help="Image to measure growth against (e.g. the deployed tag).")
@click.option(
    "--growth-basis",
    type=click.Choice(["compressed", "uncompressed"]),
    help="Which size the growth rules compare (default: compressed, as pushed).",
)
@click.option("--exact", is_flag=True, help="Stream every layer for exact uncompressed sizes.")
@click.option(
    "--warn-only",
    is_flag=True,
    help="Report failed and undecidable rules but exit 0 (images that cannot be read still exit 3).",
)
@output_options("check")
@click.option(
    "--report",
    "reports",
    multiple=True,
    callback=_report_spec,
    metavar="FORMAT=FILE",
    help="Also write a report, e.g. --report junit=check.xml --report sarif=check.sarif (repeatable).",
)
@scan_options
@image_options
def check(
    refs: tuple[str, ...],
    policy_path: Path | None,
    no_policy: bool,
    rule_flags: dict[str, object],
    disabled: tuple[str, ...],
    severities: list[tuple[str, str]],
    baseline: str | None,
    growth_basis: str | None,
    exact: bool,
    warn_only: bool,
    fmt: str,
    reports: list[tuple[str, Path]],
    scan: ScanSettings,
    read: ReadContext,
) -> None:
    """Check images against a policy before pushing them: sizes, layers, dive's efficiency and waste, growth
    against a baseline, forbidden paths, labels, user, base image, platforms.

    The policy is .ociinspect.toml, [tool.ociinspect.check] in pyproject.toml, or dive's .dive-ci (read
    unchanged), found from the working directory up; every rule is also a flag.  Layer contents are read only
    when a rule needs them.  Exit codes: 0 pass (warnings allowed), 1 a rule failed, 2 bad usage or policy,
    3 an image could not be read (a failed rule wins: 1), 4 no rule failed but a size rule could not be decided
    (a cheap uncompressed size is unknown or ambiguous: rerun with --exact).  Sizes: 2G = 2·10⁹ bytes, 2GiB =
    2·2³⁰.  Rules and formats: docs/policy.md, docs/ci.md.

    \b
    Examples:
      ociinspect check oci:build/layout:latest
      ociinspect check docker-archive:app.tar --max-compressed-size 200MB --baseline registry.example.com/app:prod
      ociinspect check oci-archive:app.tar --policy .dive-ci --report junit=check.xml --report sarif=check.sarif
    """
    policy = _policy(policy_path, no_policy, rule_flags, disabled, severities, baseline, growth_basis)
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    checks, errors = gather(read, refs, policy, scan, progress=progress_bar)
    for _, error in errors:
        report_error(error)
    code = exit_code(checks, errors=[e for _, e in errors], warn_only=warn_only)
    doc = check_document(policy, checks, errors, warn_only=warn_only, exit_code=code)
    _side_reports(doc, fmt, reports)
    emit("check", fmt, [doc], code=code)


def _policy(
    path: Path | None,
    no_policy: bool,
    rule_flags: dict[str, object],
    disabled: Sequence[str],
    severities: Sequence[tuple[str, str]],
    baseline: str | None,
    growth_basis: str | None,
) -> Policy:
    """The policy file (given, or found from the working directory up) with the command line applied."""
    if no_policy and path is not None:
        raise UsageError("--policy and --no-policy contradict each other")
    policy = Policy() if no_policy else load_policy(path, search_from=Path.cwd())
    return with_flags(
        policy,
        rule_flags,
        disabled=disabled,
        severities=severities,
        baseline=baseline,
        growth_basis=growth_basis,
    )


def _side_reports(doc: dict[str, Any], fmt: str, reports: Sequence[tuple[str, Path]]) -> None:
    """``--report FORMAT=FILE`` files; GitHub annotations on stderr and the Markdown step summary when running
    in GitHub Actions."""
    for report_fmt, path in reports:
        write_file(path, render("check", report_fmt, [doc]))
    if _github_actions() and fmt != "github":
        annotations = render("check", "github", [doc])
        if annotations:
            click.echo(annotations, err=True)  # the runner reads workflow commands from stderr too
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        write_file(Path(summary), render("check", "markdown", [doc]), append=True)
