#!/usr/bin/env bash
# The local stack (README: `npm start`): installs, builds, starts every dependency on free
# loopback ports (endpoints in .infra/env) and then the services. Ctrl-C stops it all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
install_deps
pnpm -s build
node libs/testkit/dist/cli.js up "${CDP_INFRA_COMPONENTS:-all}"
trap 'node libs/testkit/dist/cli.js down' EXIT INT TERM
echo "dependencies are up (see .infra/env); press Ctrl-C to stop"
# Services join here as they land (each reads .infra/env).
while true; do sleep 3600; done
