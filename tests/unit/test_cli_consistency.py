"""Issue 12, one grammar across commands: every command's shared flags have one spelling and one help text, and
the error style, did-you-mean, skopeo's flags, platform shorthands, -o, -q and the output warts hold."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from ociinspect.cli import cli, main
from ociinspect.cli.options import DEFAULT_JOBS, HELP
from ociinspect.model.image import Platform
from tests.corpus import corpus_path

#: commands that read images (image_options): --platform, --jobs, the registry flags
IMAGE_COMMANDS = {"inspect", "waste", "files", "compare", "vm", "check", "diff"}
#: commands that talk to a registry (registry_options)
REGISTRY_COMMANDS = IMAGE_COMMANDS | {
    "manifest", "config", "digest", "tags", "repos", "blob", "referrers", "audit scan",
}  # fmt: skip
#: commands whose output is raw bytes or a database (no --format): say why each is exempt
NO_FORMAT = {
    "manifest": "raw manifest bytes",
    "config": "raw config bytes",
    "blob": "raw blob bytes",
    "digest": "one digest line",
    "audit scan": "fills the audit database; its one-line result is on stderr",
}
NO_OUTPUT = {"audit scan": "fills the audit database (--db)"}
FORMATS = ("table", "json", "markdown")
REGISTRY_FLAGS = {
    "--creds": "creds",
    "--authfile": "authfile",
    "--tls-verify": "tls-verify",
    "--cert-dir": "cert-dir",
    "--timeout": "timeout",
}


def _commands() -> dict[str, click.Command]:
    """Every leaf command of the tree, by its path (``audit scan``)."""
    ctx = click.Context(cli)
    out: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            path = f"{prefix}{name}"
            if isinstance(command, click.Group):
                walk(command, path + " ")
            else:
                out[path] = command

    walk(cli, "")
    return out


def _options(command: click.Command) -> dict[str, click.Option]:
    """Visible options by each of their spellings."""
    found: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for decl in [*param.opts, *param.secondary_opts]:
                assert decl not in found, f"{decl} declared twice"
                found[decl] = param
    return found


COMMANDS = _commands()


def test_the_tree_is_what_the_docs_list() -> None:
    assert set(COMMANDS) >= REGISTRY_COMMANDS
    assert set(COMMANDS) - REGISTRY_COMMANDS == {"audit report", "audit runs", "audit diff"}


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_shared_flags_have_one_spelling_and_one_help(path: str) -> None:
    opts = _options(COMMANDS[path])
    if path not in NO_OUTPUT:
        assert opts["-o"] is opts["--output"] and opts["-o"].help == HELP["output"], path
    assert opts["-q"] is opts["--quiet"] and opts["-q"].help == HELP["quiet"], path
    if path not in NO_FORMAT:
        fmt = opts["-f"]
        assert fmt is opts["--format"] and fmt.help == HELP["format"] and fmt.default == "table", path
        choices = list(fmt.type.choices)  # type: ignore[attr-defined]
        assert choices[: len(FORMATS)] == list(FORMATS), path
        assert "text" not in choices  # a deprecated alias, not offered
    if path in IMAGE_COMMANDS | {"manifest", "config", "digest"}:
        assert opts["--platform"].help == HELP["platform"], path
    if path in IMAGE_COMMANDS | {"audit scan"}:
        jobs = opts["-j"]
        assert jobs is opts["--jobs"] and jobs.help == HELP["jobs"], path
        hidden = {o.name for o in COMMANDS[path].params if isinstance(o, click.Option) and o.hidden}
        assert hidden >= {"workers_alias", "concurrency_alias"}, path
    if path in REGISTRY_COMMANDS:
        for flag, key in REGISTRY_FLAGS.items():
            assert opts[flag].help == HELP[key], (path, flag)
        assert "--deadline" in opts and "--password-stdin" in opts and "--username" in opts, path
    for old in ("--workers", "--concurrency"):
        assert old not in opts, (path, old)  # hidden aliases only


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dive_ref(variant: str = "gzip") -> str:
    return f"oci-archive:{corpus_path('wagoodman__dive', '.data', f'test-oci-{variant}-image.tar')}"


@pytest.mark.parametrize(
    ("argv", "needle", "hint"),
    [
        (["inspct", "x"], "No such command 'inspct'", "did you mean `inspect`?"),
        (["audit", "scna", "x"], "No such command 'scna'", "did you mean `scan`?"),
        (["inspect", "x", "--credz", "u"], "No such option: --credz", "did you mean --creds?"),
        (["inspect", "x", "-f", "yaml"], "'yaml' is not one of", "see `ociinspect inspect --help`"),
        (["compare", dive_ref()], "compare needs at least two images", "name two or more refs"),
        (["inspect", "x", "--creds", "bob:hunter2"], "refusing --creds USER:PASSWORD", "--password-stdin"),
    ],
)
def test_usage_errors_in_our_style_with_a_hint(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str, hint: str
) -> None:
    code, out, err = run(capsys, *argv)
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines[0].startswith("ociinspect: error: ") and needle in lines[0], err
    assert lines[1].startswith("  hint: ") and hint in lines[1], err
    assert "Usage:" not in err and "hunter2" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64/v8"),
        ("arm64/v8", "linux/arm64/v8"),
        ("aarch64", "linux/arm64"),
        ("amd64", "linux/amd64"),
        ("x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/arm/7", "linux/arm/v7"),
        ("armhf", "linux/arm"),
        ("armel", "linux/arm/v6"),
        ("i386", "linux/386"),
        ("windows/amd64", "windows/amd64"),
        ("Linux/ARM64", "linux/arm64"),
    ],
)
def test_platform_shorthands_as_containerd(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


def test_platform_shorthands_match_what_they_mean() -> None:
    assert Platform("linux", "arm64", "v8").matches(Platform.parse("arm64"))
    assert Platform("linux", "arm", "v7").matches(Platform.parse("armhf"))
    for bad in ("linux", "foo", "a/b/c/d", "linux/"):
        with pytest.raises(ValueError, match="os/arch"):
            Platform.parse(bad)


def test_shorthand_picks_from_an_index_and_mismatch_on_one_image_is_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "inspect", dive_ref(), "--platform", "arm64", "-f", "json")
    assert code == 0 and json.loads(out)["platform"]["architecture"] == "arm64", err
    code, out, err = run(capsys, "inspect", "oci:fixtures/demo:latest", "--platform", "arm64", "-f", "json")
    assert code == 0 and json.loads(out)["platform"]["architecture"] == "amd64"
    assert "ociinspect: warning:" in err and "single-platform linux/amd64" in err


def test_output_file_is_written_atomically_and_stdout_stays_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out.json"
    code, out, err = run(capsys, "inspect", "oci:fixtures/demo:latest", "-f", "json", "-o", str(target))
    assert code == 0 and out == "" and err == ""
    assert json.loads(target.read_text())["reference"] == "oci:fixtures/demo:latest"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left
    code, _, err = run(capsys, "inspect", "oci:fixtures/demo:latest", "-o", str(tmp_path / "no" / "x"))
    assert code == 2 and "hint:" in err


def test_old_concurrency_spellings_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--workers", "--concurrency", "-j", "--jobs"):
        code, _, err = run(capsys, "waste", "oci:fixtures/demo:latest", flag, "2", "-f", "json", "--no-cache")
        assert code == 0, (flag, err)
    assert DEFAULT_JOBS == 4


def test_tls_verify_false_is_insecure_and_bare_flag_is_true(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    import ociinspect.cli.options as options

    real = options.RegistryAccess

    def spy(settings: object, *args: object) -> object:
        seen.append(settings.default.insecure)  # type: ignore[attr-defined]
        return real(settings, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(options, "RegistryAccess", spy)
    assert main(["digest", "oci:fixtures/demo:latest", "--tls-verify=false"]) == 0
    assert main(["digest", "--tls-verify", "oci:fixtures/demo:latest"]) == 0
    assert main(["digest", "oci:fixtures/demo:latest"]) == 0
    assert seen == [True, False, False]


def test_creds_reads_the_password_from_piped_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import ociinspect.cli.options as options

    got: list[tuple[str | None, str | None]] = []
    real = options.RegistryAccess

    def spy(settings: object, username: str | None, secret: str | None, authfile: str | None) -> object:
        got.append((username, secret))
        return real(settings, username, secret, authfile)  # type: ignore[arg-type]

    monkeypatch.setattr(options, "RegistryAccess", spy)
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    # a local ref names no registry, so the explicit credentials are then refused (bound to exactly one)
    assert main(["digest", "oci:fixtures/demo:latest", "--creds", "bob"]) == 2
    assert got == [("bob", "s3cret")]


def test_authfile_is_the_only_file_read(tmp_path: Path) -> None:
    from ociinspect.cli.options import RegistryAccess
    from ociinspect.registry import RegistrySettings

    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {"reg.example": {"auth": "Ym9iOnB3"}}}))
    resolver = RegistryAccess(RegistrySettings(), authfile=str(auth)).resolver({"reg.example"})
    assert resolver.config_files() == [auth]
    found = resolver.for_registry("reg.example")
    assert found is not None and found.username == "bob" and found.password == "pw"


def test_cert_dir_bundles_the_ca_files_and_says_client_certs_are_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ociinspect.cli.options import _cert_dir_bundle

    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMINE\n-----END CERTIFICATE-----\n")
    (tmp_path / "client.cert").write_text("x")
    (tmp_path / "client.key").write_text("x")
    bundle = Path(_cert_dir_bundle(str(tmp_path), None))
    text = bundle.read_text()
    assert "MINE" in text and text.count("BEGIN CERTIFICATE") > 10  # the default trust store too
    err = capsys.readouterr().err
    assert "client certificates are not supported" in err and "client.cert" in err


def test_empty_listing_says_so_and_plurals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "files", "oci:fixtures/demo:latest", "--path", "/nonexistent", "--no-cache")
    assert code == 0 and "None" not in out and "No file matches the filter." in out
    assert "0 files, 0 B" in out
    code, out, _ = run(capsys, "vm", "oci:fixtures/demo:latest")
    assert code == 0 and "1 container (1 × 1 image)" in out and "as 1 VM:" in out
    assert (
        "vm only packages" not in out and "VM-only packages (kernel, GRUB, systemd, cloud-init, SSH)" in out
    )


def test_quiet_and_no_notes_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "waste", "oci:fixtures/demo:latest", "-q", "--no-cache")
    assert code == 0 and out and err == ""
