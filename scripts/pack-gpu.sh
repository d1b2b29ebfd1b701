#!/usr/bin/env bash
# Packs what a wgflow run on the lent GPU machine needs into one xz archive under 64 MiB. That machine
# has no Node and no network; the device tool copies the working tree (the repository's own files)
# there and carries ignored paths named in its `carry` list (64 MiB in all), so the archive holds only
# what the working tree lacks:
#   .gpu-node/bin/node   this machine's Node binary (x86-64 Linux, glibc; ~24 MB compressed)
#   node_modules/...     the installed packages, linux-x64 native files only (other platforms' .node /
#                        .so / .dll / .dylib are left out: dawn.node for linux-x64 alone is 21 MB), and
#                        without what no run loads: @biomejs (lint), typescript (typecheck; vitest and
#                        tsx transpile with esbuild/oxc, ts-morph bundles its own), type declarations,
#                        source maps, Markdown; and, unless --with-peers, onnxruntime-node and
#                        @tensorflow/* (only `npm run bench -- peers` loads them)
#   .gpu-gl/*.deb        with --with-vulkan-loader: libvulkan1 and the EGL/GL loaders, for a machine
#                        where `ldconfig -p | grep libvulkan` finds nothing (see the device README; the
#                        NVIDIA Vulkan driver itself comes with the machine's driver)
# Then, with the device tool: run(carry: ["tmp/gpu-pack"], command: "bash scripts/run-on-gpu.sh").
#
# Usage: bash scripts/pack-gpu.sh [--dry-run] [--out FILE] [--with-peers] [--with-vulkan-loader]
#   --dry-run   list what would be packed (one path per line, then a summary line) and stop
#   --out FILE  archive path (default tmp/gpu-pack/wgflow-gpu.tar.xz; tmp/ is git-ignored)
# Needs: node (the one to pack), tar, xz; apt-get for --with-vulkan-loader.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=tmp/gpu-pack/wgflow-gpu.tar.xz
dry=0
peers=0
gl=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) dry=1 ;;
    --out) out=$2; shift ;;
    --with-peers) peers=1 ;;
    --with-vulkan-loader) gl=1 ;;
    *) echo "pack-gpu: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
limit=$((64 * 1024 * 1024))
die() { echo "pack-gpu: $*" >&2; exit 1; }

[[ -d node_modules ]] || die "node_modules is missing: run npm ci first"
node_bin=$(readlink -f "$(command -v node)") || die "node is not on PATH"
[[ $(uname -m) == x86_64 ]] || die "the GPU machine is x86-64; this machine is $(uname -m), its node and native modules would not run there"

# Native files of other platforms: a binary extension under a directory named for another OS/CPU.
other_platform='/([^/]*(darwin|win32|windows|freebsd|openbsd|android|sunos|aix|arm64|aarch64|armv7|ia32|riscv64|ppc64|s390x|loong64|musl)[^/]*|arm|linux-arm[^/]*)/'
binary='[.](node|so([.][0-9]+)*|dylib|dll|exe|pdb|lib|a)$'
# Packages no run needs: the linter, the TypeScript compiler (typecheck only: vitest and tsx transpile
# with esbuild/oxc; ts-morph bundles its own copy), type declarations; source maps and docs.
skip_pkgs='^node_modules/(@biomejs|\.cache|typescript|@types|@webgpu/types)/'
[[ $peers == 1 ]] || skip_pkgs='^node_modules/(@biomejs|\.cache|typescript|@types|@webgpu/types|onnxruntime-node|onnxruntime-common|@tensorflow)/'
skip_files='[.](map|d[.]ts|d[.]mts|d[.]cts|md|markdown)$'

list=$(mktemp)
trap 'rm -f "$list"' EXIT
find node_modules \( -type f -o -type l \) |
  grep -Ev "$skip_pkgs" |
  grep -Ev "$skip_files" |
  awk -v plat="$other_platform" -v bin="$binary" '!($0 ~ plat && $0 ~ bin)' |
  LC_ALL=C sort >"$list"

if [[ $gl == 1 ]]; then
  # The loaders the device README names, downloaded for amd64 (apt-get download needs no root).
  mkdir -p .gpu-gl /tmp/amd64-lists/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64-lists)
  apt-get "${o[@]}" update >/dev/null
  (cd .gpu-gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  find .gpu-gl -name '*.deb' | LC_ALL=C sort >>"$list"
fi

files=$(wc -l <"$list")
bytes=$(tr '\n' '\0' <"$list" | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
node_bytes=$(stat -c %s "$node_bin")
if [[ $dry == 1 ]]; then
  echo ".gpu-node/bin/node <- $node_bin"
  cat "$list"
  echo "pack-gpu: dry run: node ($node_bytes bytes) + $files files ($bytes bytes) uncompressed"
  exit 0
fi

mkdir -p "$(dirname "$out")"
start=$SECONDS
# The node binary enters the archive as .gpu-node/bin/node; the rest keep their paths.
tar -cf - --owner=0 --group=0 \
  --transform="s,^$(basename "$node_bin")\$,.gpu-node/bin/node," -C "$(dirname "$node_bin")" "$(basename "$node_bin")" \
  -C "$PWD" --files-from="$list" | xz -T0 -9 >"$out.part"
mv "$out.part" "$out"
size=$(stat -c %s "$out")
echo "pack-gpu: $out: $size bytes ($((size / 1024 / 1024)) MiB) from node + $files files in $((SECONDS - start)) s"
if ((size > limit)); then
  die "$out is over the 64 MiB the device tool carries ($size bytes)"
fi
