#!/usr/bin/env bash
# Install everything the test suite needs, then run the whole pytest suite.
# This is the README's second command, and what .ci/run calls. Safe to rerun: installs only what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # renders the HTML reports in a test
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)   # audit shards into a real PostgreSQL
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing Debian packages: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    echo "tests/run.sh: could not install ${need[*]}; registry tests will be skipped with that reason" >&2
  fi
fi

# A stock Debian/Ubuntu Python refuses pip outside a virtual environment (PEP 668): use the active environment,
# else this interpreter when it allows installs, else a .venv made here (the README's first command makes one too).
PY=python3
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  [ -x .venv/bin/python ] || python3 -m venv .venv || { echo "tests/run.sh: could not create .venv (apt-get install python3-venv)" >&2; exit 1; }
  PY=.venv/bin/python
fi
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]" || { echo "tests/run.sh: pip install failed" >&2; exit 1; }

"$PY" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests — treating that as a failure" >&2
  exit 1
fi
exit "$rc"
