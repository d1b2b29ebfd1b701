#!/usr/bin/env bash
# Installs the MPI builds that test/mpi.test.ts runs runtime/distributed against: Debian's Open MPI
# (openmpi-bin: mpirun.openmpi and libmpi.so.40; libopenmpi-dev: its mpi.h) and MPICH (mpich:
# mpirun.mpich and libmpich.so.12; libmpich-dev: its mpi.h). Both can be installed side by side.
# Without them those tests skip with a message.
#
# Idempotent and fast when already installed (one dpkg query). Runs apt as root, through sudo when
# not root. Exit 0 when all four packages are installed, 1 if not.
set -euo pipefail

PACKAGES=(openmpi-bin libopenmpi-dev mpich libmpich-dev)
log() { echo "setup-mpi: $*"; }
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }
missing() { for p in "${PACKAGES[@]}"; do installed "$p" || echo "$p"; done; }
versions() { dpkg-query -W -f='${Package} ${Version}\n' openmpi-bin mpich 2>/dev/null | tr '\n' ' '; }

command -v dpkg-query >/dev/null || { echo "setup-mpi: not a Debian/Ubuntu system: install Open MPI and/or MPICH by hand" >&2; exit 1; }
mapfile -t todo < <(missing)
if ((${#todo[@]} == 0)); then
  log "$(versions)already installed"
  exit 0
fi
command -v apt-get >/dev/null || { echo "setup-mpi: no apt-get: install ${todo[*]} by hand" >&2; exit 1; }
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "setup-mpi: not root and no sudo: run this script as root" >&2
  exit 1
fi
log "installing ${todo[*]} with apt"
"${SUDO[@]}" apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
mapfile -t still < <(missing)
((${#still[@]} == 0)) || { echo "setup-mpi: apt-get ran, but ${still[*]} are still not installed" >&2; exit 1; }
log "installed: $(versions)"
