#!/usr/bin/env bash
# Makes sure Dawn (npm `webgpu`) has a WebGPU adapter on this machine.
#
# With node_modules installed, it asks Dawn itself (scripts/probe-adapter.mjs) and does
# nothing when an adapter is found (a real GPU, or lavapipe already there). Before
# `npm ci` it can't ask Dawn, so it checks the Mesa Vulkan driver version instead.
# When neither check passes it installs Mesa's lavapipe, a CPU Vulkan driver: Dawn needs
# Mesa >= 24 and Debian bookworm ships 22.3, so on bookworm the driver comes from
# bookworm-backports, on the same mirror that the machine's own apt sources use; on a
# newer Debian/Ubuntu the distribution's own package is recent enough.
#
# Idempotent. Runs apt as root, through sudo when not root. Exit 0 when done, 1 if not.
# Runs from a clone (`npm run setup-gpu`) and from the installed package (`npx wgflow setup-gpu`,
# where this folder is node_modules/wgflow/scripts and `webgpu` may be installed further up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "setup-gpu: $*"; }
die() { echo "setup-gpu: $*" >&2; exit 1; }

mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
mesa_recent() { mesa_version | grep -qE '^(2[4-9]|[3-9][0-9])\.'; }
# Node's own resolution from this package's folder: node_modules/webgpu here or in a folder above.
have_webgpu() { command -v node >/dev/null && node --input-type=module -e "await import('webgpu')" >/dev/null 2>&1; }
probe() { timeout 60 node scripts/probe-adapter.mjs 2>/dev/null; }

# 1. Nothing to do?
if have_webgpu; then
  if info=$(probe); then log "WebGPU adapter found: $info"; exit 0; fi
  log "Dawn finds no WebGPU adapter"
elif mesa_recent; then
  log "mesa-vulkan-drivers $(mesa_version) already installed (run again after npm ci to probe Dawn)"
  exit 0
else
  log "no node_modules yet and no Mesa >= 24: installing lavapipe"
fi

# 2. Install lavapipe with apt.
command -v apt-get >/dev/null || die "no apt-get here: install a Vulkan driver (Mesa >= 24 lavapipe, or a GPU's) by hand"
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  die "not root and no sudo: run this script as root"
fi

codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
apt_target=()
if [[ $codename == bookworm ]]; then
  apt_target=(-t bookworm-backports)
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The mirror of the machine's own bookworm source (deb822 first, then one-line format).
    mirror=$(awk '
      function flush() { if (uri != "" && suite) { print uri; found = 1; exit } uri = ""; suite = 0 }
      FNR == 1 { flush() }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
      END { if (!found) flush() }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
    if [[ -z $mirror ]]; then
      mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
    fi
    [[ -n $mirror ]] || die "no bookworm apt source found to derive a mirror from"
    log "adding bookworm-backports from the machine's own mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
fi

"${SUDO[@]}" apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  "${apt_target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
mesa_recent || die "installed mesa-vulkan-drivers '$(mesa_version)', but Dawn needs >= 24"
log "installed mesa-vulkan-drivers $(mesa_version)"

# 3. Check with Dawn when it is installed.
if have_webgpu; then
  info=$(timeout 60 node scripts/probe-adapter.mjs) || die "lavapipe is installed but Dawn still finds no WebGPU adapter"
  log "WebGPU adapter found: $info"
fi
