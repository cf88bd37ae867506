# Shared shell helpers for scripts/*.sh: bring in the pinned pnpm without a global install.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PNPM_VERSION="$(node -p 'require(process.argv[1]).packageManager.split("@")[1]' "$REPO_ROOT/package.json")"

ensure_pnpm() {
  local bin="$REPO_ROOT/.tools/node_modules/.bin"
  if [ ! -x "$bin/pnpm" ] || [ "$("$bin/pnpm" --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
    echo "[setup] installing pnpm@$PNPM_VERSION into .tools/" >&2
    mkdir -p "$REPO_ROOT/.tools"
    npm install --silent --no-audit --no-fund --no-save --no-package-lock \
      --prefix "$REPO_ROOT/.tools" "pnpm@$PNPM_VERSION" >&2
  fi
  export PATH="$bin:$REPO_ROOT/node_modules/.bin:$PATH"
}

install_deps() {
  ensure_pnpm
  (cd "$REPO_ROOT" && pnpm install --frozen-lockfile --reporter=append-only 2>&1 | tail -n 3) >&2
}
