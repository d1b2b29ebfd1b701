#!/usr/bin/env bash
# Installs the PyTorch oracle of the runtime/torch tests: Debian's python3-torch and
# python3-torchvision, used through /usr/bin/python3 (test/fixtures/torch/make_state_dicts.py writes
# the .pth files the tests read). Without them those tests skip with a message.
#
# Idempotent and fast when already installed (one python import). Runs apt as root, through sudo
# when not root. Exit 0 when torch and torchvision import, 1 if not.
set -euo pipefail

log() { echo "setup-torch: $*"; }
have_torch() { /usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1; }

if have_torch; then
  log "$(/usr/bin/python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)') already installed"
  exit 0
fi
command -v apt-get >/dev/null || { echo "setup-torch: no apt-get: install python3-torch and python3-torchvision by hand" >&2; exit 1; }
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "setup-torch: not root and no sudo: run this script as root" >&2
  exit 1
fi
log "installing python3-torch python3-torchvision with apt"
"${SUDO[@]}" apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision >/dev/null
have_torch || { echo "setup-torch: installed, but /usr/bin/python3 cannot import torch and torchvision" >&2; exit 1; }
log "installed: $(/usr/bin/python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
