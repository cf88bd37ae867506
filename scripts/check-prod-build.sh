#!/usr/bin/env bash
# Builds what the image ships (tsconfig.build.json: no tests, src/testing, src/bench or
# src/fixtures) in a scratch copy of the sources, as the Dockerfile does on a clean tree, and
# fails if any such file reached a dist/ or a service's dist/main.js is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cdp-prod-build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp tsconfig.base.json tsconfig.build.json package.json "$scratch/"
ln -s "$REPO_ROOT/node_modules" "$scratch/node_modules"
for pkg in libs/* services/*; do
  mkdir -p "$scratch/$pkg"
  cp -r "$pkg/src" "$pkg"/package.json "$pkg"/tsconfig*.json "$scratch/$pkg/"
  # Workspace links (../../libs/x) stay relative, so they point into the scratch copy.
  [ -d "$pkg/node_modules" ] && cp -a "$pkg/node_modules" "$scratch/$pkg/"
done

(cd "$scratch" && "$REPO_ROOT/node_modules/.bin/tsc" -b tsconfig.build.json)

status=0
shipped=$(cd "$scratch" && find libs services -path '*/dist/*' -type f)
leaked=$(grep -E '\.test\.|/dist/(testing|bench|fixtures)/' <<<"$shipped" || true)
if [ -n "$leaked" ]; then echo "production build contains test/testing/bench/fixture files:"; echo "$leaked"; status=1; fi
for service in services/*; do
  if [ ! -f "$scratch/$service/dist/main.js" ]; then echo "$service/dist/main.js missing from the production build"; status=1; continue; fi
  # With no environment, main.js loads every module it needs and stops at config validation:
  # a module left out of the build would fail earlier with MODULE_NOT_FOUND.
  out=$(cd "$scratch/$service" && env -i PATH="$PATH" node dist/main.js 2>&1 || true)
  grep -q 'invalid configuration' <<<"$out" || { echo "$service: production dist/main.js did not load:"; head -n 5 <<<"$out"; status=1; }
done
# cdp-topics (the charts' hook Job runs it from a service image): loads and stops at its usage.
out=$(cd "$scratch/libs/kafka" && env -i PATH="$PATH" node dist/topics-cli.js 2>&1 || true)
grep -q 'usage: cdp-topics' <<<"$out" || { echo "libs/kafka: production dist/topics-cli.js did not load:"; head -n 5 <<<"$out"; status=1; }
# cdp-dlq (operators run it in a service image): loads and stops at its usage.
out=$(cd "$scratch/libs/kafka" && env -i PATH="$PATH" node dist/dlq-cli.js 2>&1 || true)
grep -q 'usage: cdp-dlq' <<<"$out" || { echo "libs/kafka: production dist/dlq-cli.js did not load:"; head -n 5 <<<"$out"; status=1; }
[ -n "${KEEP_PROD_BUILD:-}" ] && trap - EXIT && echo "kept in $scratch"
echo "production build: $(grep -c . <<<"$shipped") files in $(cd "$scratch" && ls -d libs/*/dist services/*/dist | wc -l) dist folders; $( [ $status = 0 ] && echo clean || echo FAILED)"
exit $status
