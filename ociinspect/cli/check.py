"""``ociinspect check``: gate an image on a policy before it is pushed (``docs/ci.md``, ``docs/policy.md``)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ociinspect.cli import cli
from ociinspect.cli.options import ReadContext, image_options, report_error
from ociinspect.cli.waste import ScanSettings, scan_options, scan_reference
from ociinspect.errors import ExitCode, NotFound, OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image
from ociinspect.policy.files import LIST_FLAGS, load_policy, with_flags
from ociinspect.policy.rules import RULES, Facts, ImageCheck, Policy, evaluate, exit_code
from ociinspect.reports import render
from ociinspect.reports.ci import FORMATS, check_document

__all__ = ["check", "gather"]

F = TypeVar("F", bound=Callable[..., Any])

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
        if not sep or fmt not in FORMATS or not path:
            raise click.BadParameter(f"{value!r} is not FORMAT=FILE with FORMAT one of {', '.join(FORMATS)}")
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


def _write(path: Path, text: str, *, append: bool = False) -> None:
    try:
        with path.open("a" if append else "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise UsageError(
            f"writing {path}: {exc.strerror or exc}", hint="check the directory exists and is writable"
        ) from None


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
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Output format on stdout (or --output).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write --format output to FILE instead of stdout.",
)
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
    output: Path | None,
    reports: list[tuple[str, Path]],
    scan: ScanSettings,
    read: ReadContext,
) -> None:
    """Check images against a policy before pushing them: sizes, layers, dive's efficiency and waste, growth
    against a baseline, forbidden paths, labels, user, base image, platforms.

    The policy is .ociinspect.toml, [tool.ociinspect.check] in pyproject.toml, or dive's .dive-ci (read
    unchanged), found from the working directory up; every rule is also a flag.  Layer contents are read only
    when a rule needs them.  Exit codes: 0 pass (warnings allowed), 1 a rule failed, 2 bad usage or policy,
    3 an image could not be read, 4 no rule failed but a size rule could not be decided (a cheap uncompressed
    size is unknown or ambiguous: rerun with --exact).  Rules and formats: docs/policy.md, docs/ci.md.

    \b
    Examples:
      ociinspect check oci:build/layout:latest
      ociinspect check docker-archive:app.tar --max-compressed-size 200MB --baseline registry.example.com/app:prod
      ociinspect check oci-archive:app.tar --policy .dive-ci --report junit=check.xml --report sarif=check.sarif
    """
    if no_policy and policy_path is not None:
        raise UsageError("--policy and --no-policy contradict each other")
    policy = Policy() if no_policy else load_policy(policy_path, search_from=Path.cwd())
    policy = with_flags(
        policy,
        rule_flags,
        disabled=disabled,
        severities=severities,
        baseline=baseline,
        growth_basis=growth_basis,
    )
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    checks, errors = gather(read, refs, policy, scan)
    code = exit_code(
        checks,
        unreadable=any(e.exit_code == ExitCode.UNREADABLE for _, e in errors),
        usage=any(e.exit_code == ExitCode.USAGE for _, e in errors),
        warn_only=warn_only,
    )
    doc = check_document(policy, checks, errors, warn_only=warn_only, exit_code=code)
    text = render("check", fmt, [doc])
    if output is not None:
        _write(output, text)
    else:
        click.echo(text)
    for report_fmt, path in reports:
        _write(path, render("check", report_fmt, [doc]))
    if _github_actions() and fmt != "github":
        annotations = render("check", "github", [doc])
        if annotations:
            click.echo(annotations, err=True)  # the runner reads workflow commands from stderr too
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _write(Path(summary), render("check", "markdown", [doc]), append=True)
    raise SystemExit(code)


# ------------------------------------------------------------------------------------------- gathering


def _platform_options(read: ReadContext, image: Image) -> LoadOptions:
    return dataclasses.replace(read.options, platform=image.platform or read.options.platform)


def _load_per_platform(
    read: ReadContext, reference: str, image: Image, cache: dict[tuple[str, str], Image | OciInspectError]
) -> Image | OciInspectError:
    key = (reference, str(image.platform))
    if key not in cache:
        try:
            cache[key] = read.session.load(reference, _platform_options(read, image))
        except OciInspectError as exc:
            cache[key] = exc
    return cache[key]


def gather(
    read: ReadContext, refs: Sequence[str], policy: Policy, scan: ScanSettings
) -> tuple[list[ImageCheck], list[tuple[str, OciInspectError]]]:
    """Load the images (and what the enabled rules need: layer contents, the baseline, allowed bases) and
    evaluate the policy on each.  Failures are reported on stderr and returned with their reference.

    Cost: the manifests and configs; uncompressed-size trailers only for the size rules; each layer streamed
    once (or read from the cache) only for the content rules, whose scan reads the manifest and config once more
    (:func:`~ociinspect.cli.waste.scan_reference`); the baseline's and bases' manifests and configs.
    """
    errors: list[tuple[str, OciInspectError]] = []

    def failed(reference: str, exc: OciInspectError) -> None:
        report_error(exc)
        errors.append((reference, exc))

    options = dataclasses.replace(read.options, sizes=read.options.sizes if policy.needs("sizes") else "none")
    results = read.session.load_many(list(refs), options, all_platforms=read.all_platforms)
    loaded: list[tuple[str, Image]] = []
    for r in results:
        if r.error is not None:
            failed(r.reference, r.error)
            continue
        for image in r.images:
            if image.is_artifact:
                failed(
                    r.reference,
                    UsageError(
                        f"{r.reference}: {image.digest} is an artifact ({image.artifact_type}), not a container image",
                        hint="check reads container images only",
                    ),
                )
            else:
                loaded.append((r.reference, image))

    scans: dict[str, list[LayerScan]] = {}
    if policy.needs("content"):
        hashing = scan.options.hash_files or policy.needs("hashes")
        settings = dataclasses.replace(scan, options=dataclasses.replace(scan.options, hash_files=hashing))
        for reference in dict.fromkeys(ref for ref, _ in loaded):
            try:
                for image, layer_scans in scan_reference(read, reference, settings):
                    scans[image.digest] = layer_scans
            except OciInspectError as exc:
                failed(reference, exc)

    cache: dict[tuple[str, str], Image | OciInspectError] = {}
    checks = []
    failed_refs = {ref for ref, _ in errors}
    for reference, image in loaded:
        if reference in failed_refs:
            continue
        facts = Facts(image)
        if image.digest in scans:
            layer_scans = scans[image.digest]
            facts = dataclasses.replace(
                facts,
                layers=[s.entries for s in layer_scans],
                hashed=all(s.hashed for s in layer_scans),
                layer_sizes=[s.uncompressed_size for s in layer_scans],
            )
        if policy.baseline and policy.needs("baseline"):
            found = _load_per_platform(read, policy.baseline, image, cache)
            if isinstance(found, NotFound):
                facts = dataclasses.replace(
                    facts,
                    baseline_note=f"baseline {policy.baseline} not found (first push?): growth not checked",
                )
            elif isinstance(found, OciInspectError):
                failed(policy.baseline, found.with_context("reading the baseline"))
                continue
            else:
                facts = dataclasses.replace(facts, baseline=found)
        allowed = policy.rules.get("allowed-base-images")
        if allowed is not None and allowed.enabled and not _has_base_annotations(image):
            bases = []
            assert isinstance(allowed.value, tuple)
            for entry in allowed.value:
                if entry.startswith(("sha256:", "sha512:")):
                    continue  # a bare digest can only match the annotations
                base = _load_per_platform(read, entry, image, cache)
                if isinstance(base, Image):
                    bases.append(base)
                elif not isinstance(base, NotFound):
                    failed(entry, base.with_context("reading an allowed base image"))
            facts = dataclasses.replace(facts, bases=bases)
        checks.append(evaluate(policy, facts))
    return checks, errors


def _has_base_annotations(image: Image) -> bool:
    from ociinspect.analyzers.sharing import BASE_DIGEST, BASE_NAME

    return bool(image.annotations.get(BASE_NAME) or image.annotations.get(BASE_DIGEST))
