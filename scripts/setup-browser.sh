#!/usr/bin/env bash
# Installs the real browser of the browser tests (test/browser.test.ts): Debian's chromium, which runs
# WebGPU headless through its bundled SwiftShader (--headless=new --no-sandbox --enable-unsafe-webgpu),
# driven by puppeteer-core at /usr/bin/chromium (no browser download). Without it those tests skip
# with a message.
#
# Idempotent and fast when already installed. Runs apt as root, through sudo when not root.
# Exit 0 when /usr/bin/chromium runs, 1 if not.
set -euo pipefail

log() { echo "setup-browser: $*"; }
have_chromium() { [[ -x /usr/bin/chromium ]] && /usr/bin/chromium --version >/dev/null 2>&1; }

if have_chromium; then
  log "$(/usr/bin/chromium --version 2>/dev/null | head -1) already installed"
  exit 0
fi
command -v apt-get >/dev/null || { echo "setup-browser: no apt-get: install chromium by hand" >&2; exit 1; }
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "setup-browser: not root and no sudo: run this script as root" >&2
  exit 1
fi
log "installing chromium with apt"
"${SUDO[@]}" apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
have_chromium || { echo "setup-browser: installed, but /usr/bin/chromium does not run" >&2; exit 1; }
log "installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
