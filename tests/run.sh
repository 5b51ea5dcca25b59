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

python3 -m pip install -q --disable-pip-version-check -e ".[test]" || { echo "tests/run.sh: pip install failed" >&2; exit 1; }

python3 -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests — treating that as a failure" >&2
  exit 1
fi
exit "$rc"
