#!/usr/bin/env bash
# Installs Debian's Chromium (package `chromium`, /usr/bin/chromium) for the browser tests
# (libs/testkit launchChromium) when it is missing. Idempotent: does nothing when the binary is
# there. Needs root, or sudo without a password; otherwise it says what to run and fails.
# CHROMIUM_PATH names another binary to use instead (then nothing is installed).
set -euo pipefail

target="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$target" ]; then
  exit 0
fi
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "[chromium] CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file" >&2
  exit 1
fi

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "[chromium] /usr/bin/chromium is missing and this user cannot install packages;" >&2
  echo "[chromium] run as root: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[chromium] /usr/bin/chromium is missing and there is no apt-get: install Chromium and set CHROMIUM_PATH" >&2
  exit 1
fi

echo "[chromium] installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
[ -x /usr/bin/chromium ] || { echo "[chromium] installed, but /usr/bin/chromium is not there" >&2; exit 1; }
echo "[chromium] $(/usr/bin/chromium --version 2>/dev/null || echo 'installed')" >&2
