#!/usr/bin/env bash
# The one test command (README, CI): bash scripts/test.sh [pytest args...]
# Idempotent, no prompts; works on a fresh clone with CI=true and no stdin.
# Installs what the tests need when it is missing: the venv with radflow[test], and, when
# running as root (or with passwordless sudo), DCMTK/Orthanc, Node.js, PostgreSQL (a throwaway
# cluster per test session) and Chromium (browser tests) from the distribution.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
RESULTS=${RADFLOW_TEST_RESULTS:-test-results}
JUNIT="$RESULTS/junit.xml"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Python environment
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the dependency list changed (the stamp is the hash of pyproject.toml).
stamp="$VENV/.radflow-test-install"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "installing radflow[test] into $VENV"
    "$VENV/bin/python" -m pip install --quiet -e '.[test]' </dev/null
    echo "$want" > "$stamp"
fi

# ---------------------------------------------------------------- system packages
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@";
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@";
    else return 1; fi
}
missing=()
[ -x /usr/bin/findscu ] || missing+=(dcmtk)
[ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)  # read-model tests (tests/pg_cluster.py)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # Playwright drives this one (tests/e2e/browser.py)
if [ ${#missing[@]} -gt 0 ]; then
    log "system packages missing: ${missing[*]}"
    if as_root true 2>/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq </dev/null
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    else
        log "not root and no passwordless sudo: tests that need ${missing[*]} will fail"
    fi
fi

# ---------------------------------------------------------------- test FHIR server (npm)
# Medplum's FHIR engine for the FHIR tests, pinned in radflow/fhir_server/package.json and
# installed into tests/fhir_server/runtime (the fixture would do it too, on first use).
if command -v npm >/dev/null; then
    "$VENV/bin/python" -c 'from tests.fhir_server.fixture import ensure_node_modules; ensure_node_modules()' </dev/null
fi

# ---------------------------------------------------------------- lint
# Logging misuse that only fails when a record is built (e.g. an `extra=` key named like a
# LogRecord attribute): rules and paths in pyproject.toml [tool.ruff].
log "ruff check (logging rules)"
"$VENV/bin/ruff" check --no-cache --quiet . </dev/null

# ---------------------------------------------------------------- run
mkdir -p "$RESULTS"
rm -f "$JUNIT"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$JUNIT" "$@" </dev/null
status=$?
set -e

if [ "$status" -eq 5 ]; then
    log "pytest collected no tests: that is a failure"
    exit 1
fi
if [ "$status" -ge 128 ]; then
    # Killed by a signal (128+N). temporalio workers can crash while the interpreter
    # finalizes, after every test finished (temporalio/sdk-python#300); conftest exits
    # hard to avoid it, this is the second line of defence. Accept the run only if the
    # JUnit report was written and shows tests ran with no failures and no errors.
    log "pytest ended by signal $((status - 128)); judging by $JUNIT"
    "$VENV/bin/python" - "$JUNIT" <<'PY' || exit "$status"
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as err:
    sys.exit(f"no usable JUnit report: {err}")
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(f"[test.sh] junit: {tests} tests, {bad} failures/errors, {skipped} skipped", file=sys.stderr)
sys.exit(0 if tests - skipped > 0 and bad == 0 else 1)
PY
    exit 0
fi
exit "$status"
