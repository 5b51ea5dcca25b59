"""Hostile text made safe: one helper per class of hazard (standard library only, no I/O).

Every string from a registry, an image, a file or a database server is a stranger's.  Each class of hazard has
exactly one function here, used by every caller:

* numbers — :func:`parse_uint`: ASCII digits only (str's own digit test accepts ``"²"``, ``int()`` accepts
  ``"١٢"`` and ``"1_0"``), bounded length, ``None`` for anything else;
* terminals — :func:`escape_controls`: C0/C1 controls (ESC, CSI ``U+009B``, newline), DEL and invisible Unicode
  format characters (bidi overrides such as ``U+202E``, ``U+200B``, ``U+FEFF``) written as ``\\xNN``/``\\uNNNN``;
* Markdown tables — :func:`markdown_cell`: ``\\``, ``|``, ``<``, ``>`` escaped so a value stays in its cell;
* CSV — :func:`csv_cell`: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is prefixed with ``'`` so
  spreadsheets do not run it as a formula (OWASP "CSV injection");
* secrets — :func:`redact_secrets`: database URLs and connection strings lose their password in every form
  (``user:pass@``, ``?password=``, libpq ``password=…``);
* logs — ``SafeFormatter`` (in :mod:`ociinspect.model.logformat`, which imports :mod:`logging`): the one
  ``logging.Formatter`` the CLI installs; it applies the two above to the final message and to exception text.

Cost: each function is one regex pass over its input (linear in its length).
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_UINT_DIGITS",
    "REDACTED",
    "csv_cell",
    "escape_controls",
    "is_uint",
    "markdown_cell",
    "markdown_code",
    "markdown_prose",
    "markdown_text",
    "parse_uint",
    "redact_secrets",
]

#: digits accepted by :func:`parse_uint` by default: 2**64 has 20, every size, count and id we read fits
MAX_UINT_DIGITS = 20

_ASCII_SPACE = " \t\r\n"


def is_uint(text: str | None, *, max_digits: int = MAX_UINT_DIGITS) -> bool:
    """True when ``text`` is 1..``max_digits`` ASCII digits (no sign, no space, no ``_``, no other script)."""
    return text is not None and 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_uint(text: str | None, *, max_digits: int = MAX_UINT_DIGITS) -> int | None:
    """``text`` (ASCII spaces around it trimmed) as a non-negative int, or ``None`` when it is anything but
    1..``max_digits`` ASCII digits: ``"²"``, ``"١٢"``, ``"1_000"``, ``"+1"``, ``"-1"``, ``"0x10"``, ``""``.

    The caller turns ``None`` into a typed error or ignores the value; never ``int()`` untrusted text directly.
    """
    if text is None:
        return None
    text = text.strip(_ASCII_SPACE)
    return int(text) if is_uint(text, max_digits=max_digits) else None


# C0 controls (newline and tab included), DEL, C1 controls (U+009B is a one-character CSI), and the invisible
# Unicode format characters (category Cf, plus the line and paragraph separators) that reorder or hide text:
# soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width space/joiners, LRM/RLM, bidi embeddings,
# overrides and isolates, word joiner and invisible operators, BOM / zero-width no-break space, interlinear
# annotation marks, and the "tag" characters (U+E0000-U+E007F) used to smuggle invisible ASCII.
# (This module's patterns are strings compiled at first use by re's cache: compiling them all at import took
# ~1.5 ms of every command, and most runs print no hostile text.)
_CONTROL = (
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def _escape_one(m: re.Match[str]) -> str:
    c = ord(m[0])
    if c < 0x100:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def escape_controls(text: str) -> str:
    """``text`` with every control or invisible format character written as ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``.

    An ESC sequence must not drive the user's terminal (title, clipboard, hidden text), a newline must not forge
    an output line, a bidi override must not make ``evil.sh`` read as ``hs.live``.  Cost: two C scans for printable
    ASCII, else one regex pass.
    """
    if text.isascii() and text.isprintable():
        return text  # (printable ASCII holds none of them: two C scans, no regex)
    return re.sub(_CONTROL, _escape_one, text)


_MARKDOWN = r"[\\|<>]"
_MARKDOWN_ESCAPES = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;"}


def markdown_text(value: object) -> str:
    """``value`` as inline Markdown text: controls escaped (:func:`escape_controls`), then ``\\`` and ``|``
    backslash-escaped and ``<``/``>`` written as entities, so no value can end a table cell, start a row, or
    open an HTML tag in a GitHub or GitLab rendering.  Cost: two regex passes."""
    return re.sub(_MARKDOWN, lambda m: _MARKDOWN_ESCAPES[m[0]], escape_controls(str(value)))


def markdown_cell(value: object) -> str:
    """One table cell (GitHub "pipe" tables): :func:`markdown_text`.  ``tabulate``'s ``github``/``pipe`` formats
    do not escape, so every Markdown table renderer passes every cell and header through this."""
    return markdown_text(value)


def markdown_prose(text: str) -> str:
    """A whole Markdown document made safe: every line that is not a table row (rows start with ``|`` and had
    each cell escaped by :func:`markdown_cell`) goes through :func:`markdown_text`, so a reference or note in a
    heading or paragraph cannot open an HTML tag or start a table.  Our own Markdown syntax (``#``, ``-``,
    ``**``, backticks) is untouched.  Renderers build plain lines, then call this once.  Cost: linear."""
    return "\n".join(line if line.startswith("|") else markdown_text(line) for line in text.split("\n"))


def markdown_code(value: object) -> str:
    """``value`` as an inline code span outside tables (headings, list items): controls escaped, the fence one
    backtick longer than any run of backticks inside, so the value cannot close the span early."""
    text = escape_controls(str(value))
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not evaluate: a string starting with ``=``, ``+``, ``-``, ``@``, tab,
    CR or LF gets a leading ``'`` (OWASP); numbers and other strings are returned unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


REDACTED = "REDACTED"

# scheme://user:password@host — greedy to the last "@" of the token, so a password holding "@" or ":" is covered
_URL_PASSWORD = r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@?#]*):[^\s]*@"
# ?password=… / &password=… in a URL query (value ends at & # or whitespace)
_QUERY_SECRET = (
    r"(?i)([?&](?:password|passwd|pwd|pass|sslpassword|secret|token|access_token|refresh_token|api_?key)=)"
    r"[^&#\s]*"
)
# libpq key=value strings: password=secret, password = 'sec ret', sslpassword=…
_KV_SECRET = r"(?i)(?<![?&\w])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\"]+)"


def redact_secrets(text: str) -> str:
    """``text`` with database (and other URL) passwords replaced by ``REDACTED`` in every form: URL user-info
    (``postgresql://user:pass@host`` → ``postgresql://user:REDACTED@host``), secret query parameters
    (``?password=…``, ``&sslpassword=…``, ``?token=…``) and libpq key=value strings (``host=x password=secret``,
    ``password='a b'``).  Used for every message, report and log line that may quote a connection target.
    Cost: three regex passes."""
    text = re.sub(_URL_PASSWORD, lambda m: f"{m[1]}:{REDACTED}@", text)
    text = re.sub(_QUERY_SECRET, lambda m: m[1] + REDACTED, text)
    return re.sub(_KV_SECRET, lambda m: m[1] + REDACTED, text)
