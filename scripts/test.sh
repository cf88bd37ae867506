#!/usr/bin/env bash
# The test command (README: `npm test`): installs what is missing, type-checks, lints, starts
# the shared harness once, runs the unit and integration projects and the short chaos round,
# and prints one `N passed, N failed` line summing every runner. Exits non-zero on any failure.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

RESULTS="$REPO_ROOT/.test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"

install_deps || { echo "dependency install failed"; exit 1; }

check() { # name, command...: a non-jest step counted as one test
  local name=$1; shift
  echo "== $name"
  if "$@"; then echo "$name passed" > "$RESULTS/$name.check"; else echo "$name failed" > "$RESULTS/$name.check"; fi
}

check chromium bash scripts/install-chromium.sh
check typecheck pnpm -s build
check lint pnpm -s lint
check prod-build bash scripts/check-prod-build.sh

echo "== infra up"
trap 'node libs/testkit/dist/cli.js down >/dev/null 2>&1 || true' EXIT INT TERM
if ! node libs/testkit/dist/cli.js up "${CDP_INFRA_COMPONENTS:-all}"; then
  echo "infra failed" > "$RESULTS/infra.check"
fi

jest_project() { # project name
  echo "== jest $1"
  # --forceExit: the results are written once the last test ends; a handle some test leaves
  # open (a timer, a socket) must not keep the run waiting until CI's limit.
  pnpm exec jest --selectProjects "$1" --ci --passWithNoTests --forceExit --json --outputFile="$RESULTS/$1.json" 2>&1 | tail -n 200
  [ -f "$RESULTS/$1.json" ] || echo "jest-$1 failed" > "$RESULTS/jest-$1.check"
}

jest_project unit
jest_project integration
jest_project e2e
echo "== chaos (short round)"
CHAOS_RESULTS="$RESULTS" bash scripts/chaos.sh short || true
[ -f "$RESULTS/chaos.json" ] || echo "chaos failed" > "$RESULTS/chaos-run.check"

echo "== summary"
node scripts/summarize-tests.js "$RESULTS"
