"""HTML pages (issue 12): every page says when, by which version and for which refs it was generated; source
URLs are links (http/https only, escaped); the vm, compare and audit pages never scroll sideways at 1280 and
390 CSS px (measured in headless Chromium); small bars stay visible when one image dominates.

Chromium clamps a headless window to at least 500 px wide, so the pages are measured inside ``srcdoc`` iframes
of exactly 1280 and 390 px (media queries and ``document.scrollingElement`` see the iframe's viewport); one
Chromium run measures both widths.  ``OCIINSPECT_SCREENS=DIR`` also writes screenshots for a human to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness.browser import CHROMIUM_FLAGS, chromium_executable

from ociinspect._version import __version__
from ociinspect.cli import main
from ociinspect.reports import render
from ociinspect.reports.html import MIN_BAR_PCT, link, linkify, page, safe_url

pytestmark = pytest.mark.timeout(120)

#: 10 images: enough for the "8+ images" layout cases
NAMES = (
    "base",
    "app1",
    "app2",
    "app3",
    "rebased",
    "recompressed",
    "os-ubuntu",
    "os-alpine",
    "os-fedora",
    "demo",
)
LONG_OS = "Debian GNU/Linux 12 (bookworm) " + "with-a-vendor-build-suffix-that-never-breaks-" * 3 + "x" * 40
GIB2 = 2 * 10**9
#: the narrowest a small image's bar may be on screen, in CSS px
VISIBLE_PX = 4.0

FLAGS = CHROMIUM_FLAGS

MEASURE = """
<script>
window.addEventListener('load', () => {
  const out = {};
  for (const f of document.querySelectorAll('iframe')) {
    const d = f.contentDocument, w = f.contentWindow, se = d.scrollingElement;
    const bars = {};
    for (const svg of d.querySelectorAll('.chart svg')) {
      bars[svg.getAttribute('aria-label')] = [...svg.querySelectorAll('rect')].map(r => r.getBoundingClientRect().width);
    }
    out[f.id] = {
      inner: w.innerWidth, client: se.clientWidth, scroll: se.scrollWidth, bars,
      tables: [...d.querySelectorAll('table')].map(t => [t.scrollWidth, t.parentElement.clientWidth]),
      links: [...d.querySelectorAll('a')].map(a => a.href),
    };
  }
  const pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_executable()


def measure(exe: str, page_html: str, tmp_path: Path, name: str) -> dict[str, Any]:
    """The page laid out at 1280 and 390 CSS px: viewport and scroll widths, each table's width against its
    wrapper, each chart bar's on-screen widths (by the bar's aria-label), the links' targets."""
    frames = "".join(
        f'<iframe id="w{w}" style="width:{w}px;height:900px;border:0;display:block" '
        f'srcdoc="{html.escape(page_html, quote=True)}"></iframe>'
        for w in (1280, 390)
    )
    harness = tmp_path / f"{name}-harness.html"
    harness.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{frames}{MEASURE}</body></html>")
    r = subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1900", "--dump-dom",
         harness.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    m = re.search(r'<pre id="measure">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no measurement in Chromium's DOM: {r.stderr[-500:]}"
    out: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    if keep := os.environ.get("OCIINSPECT_SCREENS"):  # for a human to look at
        for w in (1280, 390):
            single = tmp_path / f"{name}-{w}.html"
            single.write_text(
                f"<!DOCTYPE html><html><body style='margin:0;overflow:hidden'><iframe style='width:{w}px;height:2400px;border:0;display:block' "
                f'srcdoc="{html.escape(page_html, quote=True)}"></iframe></body></html>'
            )
            subprocess.run(
                [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={max(w, 500)},2400",
                 f"--screenshot={Path(keep) / f'{name}-{w}.png'}", single.as_uri()],
                capture_output=True, timeout=60,
            )  # fmt: skip
    return out


def assert_fits(m: dict[str, Any]) -> None:
    for frame, w in (("w1280", 1280), ("w390", 390)):
        got = m[frame]
        assert got["inner"] == w, got["inner"]
        assert got["scroll"] <= got["client"] <= w, (frame, got["scroll"], got["client"])
    for table_w, wrapper_w in m["w1280"]["tables"]:  # at 1280 no table needs its scrolling wrapper
        assert table_w <= wrapper_w, m["w1280"]["tables"]


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "-f", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.fixture
def refs(fixture_images: Any) -> list[str]:
    return [f"oci:{fixture_images[n]}:latest" for n in NAMES]


# ------------------------------------------------------------------ generation time, version, refs, links


@pytest.mark.parametrize("command", ["vm", "compare"])
def test_every_page_says_when_which_version_and_which_refs(
    command: str, refs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, *refs, "-f", "html"]) == 0
    out = capsys.readouterr().out
    when = re.search(r'<time datetime="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)">', out)
    assert when, out[:600]
    assert f'<span class="version">{__version__}</span>' in out
    listed = re.search(r'<ol class="refs">(.*?)</ol>', out, re.S)
    assert listed and all(html.escape(r) in listed.group(1) for r in refs)
    # the app images carry org.opencontainers.image.source: a link, and the only links are http(s)
    assert 'href="https://example.invalid/ociinspect/fixtures"' in listed.group(1)
    assert not re.search(r'href="(?!https?://)', out) and "<script" not in out and " src=" not in out


def test_a_failed_ref_is_listed_as_not_read(refs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    missing = refs[0].replace(":latest", ":no-such-tag")
    assert main(["compare", refs[0], refs[1], missing, "-f", "html"]) == 4
    listed = re.search(r'<ol class="refs">(.*?)</ol>', capsys.readouterr().out, re.S)
    assert listed and html.escape(missing) in listed.group(1) and "not read" in listed.group(1)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:x",
        "//evil.example/x",
        "https://",
        "https://exa mple.com/",
        "https://example.com/\x1b[31m",
        "https://example.com/\u202egnp.exe",
        "https://example.com:99999/",
        "https:\\\\evil.example\\x",
        "http://" + "a" * 3000 + ".example/",
    ],
)
def test_never_a_link_from_an_unvalidated_value(url: str) -> None:
    assert safe_url(url) is None
    out = link(url) + page("t", "", refs=["r"], sources={"r": url})
    assert "<a " not in out and "<script" not in out and "\x1b" not in out and "\u202e" not in out
    text = linkify(f"see {url} here")  # may link an http(s) prefix of it (``https://exa``), nothing else
    assert not re.search(r'href="(?!https?://)', text, re.I) and "<script" not in text and "\x1b" not in text


def test_http_urls_are_links_with_their_text_escaped() -> None:
    url = 'https://example.com/a?b=1&c="x"><img/src=x/onerror=alert(1)>'
    assert safe_url(url) == url
    out = link(url)
    assert out.startswith('<a href="https://example.com/a?b=1&amp;c=&quot;x&quot;&gt;&lt;img')
    assert "<img" not in out and 'rel="noopener noreferrer nofollow"' in out
    text = linkify("sources: vm-sizes.md 3b, HTTP://Example.org/x/y. and http://a.example/b)")
    assert (
        text.count("<a ") == 2
        and 'href="HTTP://Example.org/x/y"' in text
        and 'href="http://a.example/b"' in text
    )


def test_vm_model_sources_are_links(refs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli_json(capsys, "vm", *refs)
    cited = {
        u
        for f in doc["parameters"]["families"].values()
        for s in f["sources"]
        for u in re.findall(r"https?://\S+", s)
    }
    assert main(["vm", *refs, "-f", "html"]) == 0
    model = capsys.readouterr().out.split("<h2>Model and sources</h2>")[1]
    hrefs = {html.unescape(h) for h in re.findall(r'<a href="([^"]+)"', model)}
    assert cited and hrefs == cited, cited ^ hrefs


# ------------------------------------------------------------------ layout in Chromium: no sideways scrolling


def dominated_vm(capsys: pytest.CaptureFixture[str], refs: list[str]) -> dict[str, Any]:
    """The real ``vm`` document of 10 images, with long base-OS strings and one 2 GB container."""
    doc = cli_json(capsys, "vm", *refs)
    for n, i in enumerate(doc["images"]):
        if n % 2 == 0:
            i["os"]["pretty_name"] = LONG_OS
    doc["images"][1]["container_size"] = GIB2
    return doc


def dominated_compare(capsys: pytest.CaptureFixture[str], refs: list[str]) -> dict[str, Any]:
    """The real ``compare`` document of 10 images, one of them made 2 GB (all unique), one a long base name."""
    doc = cli_json(capsys, "compare", *refs)
    big = doc["images"][1]
    big["total_size"] = big["unique_size"] = GIB2 - big["shared_size"]
    big["total_size"] += big["shared_size"]
    doc["images"][0]["base"] = LONG_OS
    return doc


def small_bars(m: dict[str, Any], frame: str, skip: str) -> list[float]:
    """On-screen widths of every drawn bar part whose chart row is not ``skip``'s."""
    return [w for label, ws in m[frame]["bars"].items() if skip not in label for w in ws]


def test_vm_page_fits_and_small_images_stay_visible(
    chromium: str, refs: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = dominated_vm(capsys, refs)
    m = measure(chromium, render("vm", "html", [doc]), tmp_path, "vm")
    assert_fits(m)
    big = doc["images"][1]["reference"]
    for frame in ("w1280", "w390"):
        widths = small_bars(m, frame, f"{big} container")
        assert len(widths) >= 2 * len(NAMES) - 1 and min(widths) >= VISIBLE_PX, (frame, sorted(widths)[:5])
        # the 2 GB container is the longest bar, drawn to its full track
        (big_w,) = m[frame]["bars"][f"{big} container: 1.9 GiB"]
        assert big_w > 100 * min(widths) / MIN_BAR_PCT * 0.9


def test_compare_page_fits_and_every_split_stays_visible(
    chromium: str, refs: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = dominated_compare(capsys, refs)
    m = measure(chromium, render("compare", "html", [doc]), tmp_path, "compare")
    assert_fits(m)
    for frame in ("w1280", "w390"):
        parts = [w for ws in m[frame]["bars"].values() for w in ws]
        nonzero = sum((i["shared_size"] > 0) + (i["unique_size"] > 0) for i in doc["images"])
        assert len(parts) == nonzero and min(parts) >= VISIBLE_PX, (frame, sorted(parts)[:5])


def test_audit_page_fits(
    chromium: str, seeded_registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "audit.sqlite3")
    scan = subprocess.run(
        [sys.executable, "-m", "ociinspect", "audit", "scan", seeded_registry.host, "--plain-http", "--db", db],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert scan.returncode in (0, 4), scan.stderr
    r = subprocess.run(
        [sys.executable, "-m", "ociinspect", "audit", "report", "--db", db, "-f", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    doc = json.loads(r.stdout)
    doc["repos"][0]["name"] = "team/" + "a-very-long-repository-name-" * 6
    doc["repos"][0]["unique_size"] = GIB2
    out = render("audit", "html", [doc])
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', out)
    assert f"covers registry {seeded_registry.host}, run " in out and __version__ in out
    m = measure(chromium, out, tmp_path, "audit")
    assert_fits(m)
    for frame in ("w1280", "w390"):
        widths = small_bars(m, frame, "a-very-long-repository-name-")
        assert widths and min(widths) >= VISIBLE_PX, (frame, sorted(widths)[:5])
