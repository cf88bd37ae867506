#!/usr/bin/env bash
# The local stack (README: `npm start`): installs, builds, starts every dependency on free
# loopback ports (endpoints in .infra/env), then each built service with that env. Ctrl-C (or
# SIGTERM) stops the services gracefully, then the dependencies.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
install_deps
pnpm -s build
pids=()
sink_pid=
declare -A names # pid -> what it is, to say which one stopped
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null || true
  # The sink last: directors draining on SIGTERM may still deliver to it.
  [ -z "$sink_pid" ] || { kill -TERM "$sink_pid" 2>/dev/null; wait "$sink_pid" 2>/dev/null; } || true
  node libs/testkit/dist/cli.js down
}
# A signal interrupts the final wait: stop, then exit (else the script went on sleeping).
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
# Its Consul dev server keeps Consul's defaults (10 s minimum TTL, 15 s lock-delay), unlike the tests'.
CDP_INFRA_CONSUL_DEFAULTS=1 node libs/testkit/dist/cli.js up "${CDP_INFRA_COMPONENTS:-all}"
set -a; source "${CDP_INFRA_DIR:-$REPO_ROOT/.infra}/env"; set +a

# Local defaults: one broker, so replication factor 1. cdp-topics creates the topic table (and
# reconciles it on a rerun); the services only verify their topics at start.
export KAFKA_ENSURE_TOPICS=false KAFKA_REPLICATION_FACTOR=1 KAFKA_TOPIC_PARTITIONS=${KAFKA_TOPIC_PARTITIONS:-4}
node libs/kafka/dist/topics-cli.js create
export CDP_WORKSPACE_FILE=${CDP_WORKSPACE_FILE:-$REPO_ROOT/config/workspace.sample.yaml}
export CDP_SAMPLE_HMAC_SECRET=${CDP_SAMPLE_HMAC_SECRET:-local-dev-only-secret}
# One admin token for every admin API of the stack (Bearer, or Basic with it as user name); each
# service with an admin API gets an ADMIN_PORT of its own below (the default 8081 is shared):
# jobdb-manager 8093, identity 8094, archiver 8095, transform 8096.
export ADMIN_TOKEN=${ADMIN_TOKEN:-local-dev-only-admin-token}
# .stack/env: the endpoints and credentials scripts and checks use,
# one NAME=value a line, rewritten on every run; `stack_env NAME value` adds one.
stack_dir="$REPO_ROOT/.stack"
mkdir -p "$stack_dir"
: >"$stack_dir/env"
stack_env() { printf '%s=%s\n' "$1" "$2" >>"$stack_dir/env"; }
stack_env ADMIN_TOKEN "$ADMIN_TOKEN"
ops_port=9100
start_service() { # name, extra env...
  local name=$1; shift
  [ -f "services/$name/dist/main.js" ] || return 0
  env OPS_PORT=$ops_port "$@" node "services/$name/dist/main.js" &
  pids+=($!)
  names[$!]=$name
  echo "  $name: pid $! ops http://127.0.0.1:$ops_port (healthz, readyz, metrics)"
  ops_port=$((ops_port + 1))
}
# The sample sink: the sample workspace's webhooks point at it; each request it receives is one
# JSON line in .stack/sink.jsonl (emptied on every run).
: > "$stack_dir/sink.jsonl"
sink_port=9999 # the port config/workspace.sample.yaml's webhooks use
node libs/testkit/dist/cli.js sink "$sink_port" "$stack_dir/sink.jsonl" &
sink_pid=$!
names[$sink_pid]="sample sink"
echo "sample sink: http://127.0.0.1:$sink_port, pid $sink_pid (each request it receives: one line in .stack/sink.jsonl)"
stack_env SINK_URL "http://127.0.0.1:$sink_port"
echo "services:"
start_service tapi PORT="${TAPI_PORT:-8080}" HOST=127.0.0.1 SPOOL_DIR="$REPO_ROOT/.infra/tapi-spool"
echo "    tracking API: http://127.0.0.1:${TAPI_PORT:-8080}/v1/track (write key wk_server_sample_0001)"
stack_env TAPI_URL "http://127.0.0.1:${TAPI_PORT:-8080}"
stack_env WRITE_KEY wk_server_sample_0001
stack_env SPACE_ID main
start_service dedup DEDUP_DATA_DIR="$REPO_ROOT/.infra/dedup-data"
# identity-tables creates the identity graph's DynamoDB tables on DynamoDB Local (idempotent).
node services/identity/dist/tables-cli.js create
identity_admin_port=${IDENTITY_ADMIN_PORT:-8094}
start_service identity ADMIN_PORT="$identity_admin_port"
echo "    Profile API: http://127.0.0.1:$identity_admin_port/v1/spaces/main/collections/users/profiles/user_id:<id>/traits (-u \$ADMIN_TOKEN:)"
stack_env IDENTITY_ADMIN_URL "http://127.0.0.1:$identity_admin_port"
# jobdb-manager first: it migrates cdp_control and provisions the JobDBs the director takes (the
# director stays not-ready until it holds one). Names of their own on the shared MySQL server.
# Kafka and Consul are new on every run, so an earlier run's cdp_stack_* JobDBs could never be
# adopted again: drop them rather than let them pile up (names given by hand are left alone).
if [ -z "${CDP_CONTROL_DB:-}" ] && [ -z "${JOBDB_DATABASE_PREFIX:-}" ]; then
  node libs/testkit/dist/cli.js drop-stack-databases
fi
export CDP_CONTROL_DB=${CDP_CONTROL_DB:-cdp_stack_control}
manager_admin_port=${MANAGER_ADMIN_PORT:-8093}
start_service jobdb-manager POD_NAME=local JOBDB_DATABASE_PREFIX="${JOBDB_DATABASE_PREFIX:-cdp_stack_jobdb_}" ADMIN_PORT="$manager_admin_port"
echo "    Event Delivery page: http://127.0.0.1:$manager_admin_port/ (user name: \$ADMIN_TOKEN, empty password)"
stack_env MANAGER_ADMIN_URL "http://127.0.0.1:$manager_admin_port"
echo "    Event Delivery page: http://127.0.0.1:$manager_admin_port/ (user name \$ADMIN_TOKEN, no password)"
director_token=${DIRECTOR_RPC_TOKEN:-local-dev-only-director-token}
start_service director PORT="${DIRECTOR_PORT:-8090}" POD_NAME=local DIRECTOR_RPC_TOKEN="$director_token"
echo "    director RPC: http://127.0.0.1:${DIRECTOR_PORT:-8090}/v1/jobs (Authorization: Bearer \$DIRECTOR_RPC_TOKEN)"
stack_env DIRECTOR_RPC_URL "http://127.0.0.1:${DIRECTOR_PORT:-8090}"
stack_env DIRECTOR_RPC_TOKEN "$director_token"
# transform reads cdp.identified and hands the jobs to the director above.
transform_admin_port=${TRANSFORM_ADMIN_PORT:-8096}
start_service transform DIRECTOR_RPC_URLS="http://127.0.0.1:${DIRECTOR_PORT:-8090}" DIRECTOR_RPC_TOKEN="$director_token" ADMIN_PORT="$transform_admin_port"
stack_env TRANSFORM_ADMIN_URL "http://127.0.0.1:$transform_admin_port"
# archiver: cdp.deduped and cdp.undelivered to the S3Proxy bucket of .infra/env, flushed at least
# every 60 s; its admin API runs replays (cdp-replay reads ARCHIVER_ADMIN_URL and ADMIN_TOKEN).
archiver_admin_port=${ARCHIVER_ADMIN_PORT:-8095}
start_service archiver S3_FORCE_PATH_STYLE=true ARCHIVER_FLUSH_AGE_MS="${ARCHIVER_FLUSH_AGE_MS:-60000}" ADMIN_PORT="$archiver_admin_port"
stack_env ARCHIVER_ADMIN_URL "http://127.0.0.1:$archiver_admin_port"
echo "    replays: http://127.0.0.1:$archiver_admin_port/v1/replays (cdp-replay; Bearer \$ADMIN_TOKEN)"
echo "the stack is up (dependencies in .infra/env, endpoints in .stack/env); press Ctrl-C to stop"
echo "try: curl -u wk_server_sample_0001: -H 'content-type: application/json' -d '{\"userId\":\"u1\",\"event\":\"Tried It\"}' http://127.0.0.1:${TAPI_PORT:-8080}/v1/track; sleep 3; tail -n 1 .stack/sink.jsonl"
# A signal runs the traps above; otherwise one of the stack's processes ended (a service that
# failed to start says why in its log): name it, and stop the rest.
status=0
wait -n -p exited "${pids[@]}" "$sink_pid" || status=$?
echo "${names[${exited:-}]:-a stack process} exited (status $status): stopping the stack" >&2
exit 1
