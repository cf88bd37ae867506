#!/usr/bin/env bash
# Crash/kill tests against the real harness. `short` is the round .ci/run runs (dedup: the
# issue's minimum, 20 random SIGKILLs plus kills at fixed points; the whole pipeline: one round of
# every fault, e2e/README.md); `long` multiplies the kills and the pipeline's rounds. The
# CDP_CHAOS_* variables below override either round's size.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_pnpm
case "${1:-short}" in
  short)
    export CDP_CHAOS_RANDOM_KILLS=${CDP_CHAOS_RANDOM_KILLS:-20} CDP_CHAOS_FIXED_ROUNDS=${CDP_CHAOS_FIXED_ROUNDS:-2}
    export CDP_CHAOS_PIPELINE_ROUNDS=${CDP_CHAOS_PIPELINE_ROUNDS:-1} CDP_CHAOS_PIPELINE_RATE=${CDP_CHAOS_PIPELINE_RATE:-100}
    ;;
  long)
    export CDP_CHAOS_RANDOM_KILLS=${CDP_CHAOS_RANDOM_KILLS:-100} CDP_CHAOS_FIXED_ROUNDS=${CDP_CHAOS_FIXED_ROUNDS:-10}
    export CDP_CHAOS_PIPELINE_ROUNDS=${CDP_CHAOS_PIPELINE_ROUNDS:-5} CDP_CHAOS_PIPELINE_RATE=${CDP_CHAOS_PIPELINE_RATE:-200}
    # Five pipeline rounds outlast the chaos project's 15-minute test timeout.
    export CDP_TEST_TIMEOUT_MS=${CDP_TEST_TIMEOUT_MS:-3600000}
    ;;
  *) echo "usage: chaos.sh short|long" >&2; exit 2 ;;
esac
out="${CHAOS_RESULTS:-$REPO_ROOT/.test-results}/chaos.json"
mkdir -p "$(dirname "$out")"
pnpm exec jest --selectProjects chaos --ci --forceExit --json --outputFile="$out" 2>&1 | grep -v '^{"level' | tail -n 80
node -e 'const r=require(process.argv[1]); process.exit(r.numFailedTests + (r.numRuntimeErrorTestSuites||0) === 0 && r.numPassedTests > 0 ? 0 : 1)' "$out"
