#!/usr/bin/env bash
# Runs wgflow's tests and benchmark on the lent GPU machine, which has no Node and no network, from the
# archive scripts/pack-gpu.sh made here. With the device tool (it copies the working tree and runs this
# in its root; the archive travels as a carried, git-ignored path):
#   run(carry: ["tmp/gpu-pack"], command: "bash scripts/run-on-gpu.sh", timeout_s: 600)
# Steps:
#  1. unpack the archive into the repository root (node_modules/, .gpu-node/, .gpu-gl/) and put its
#     node first on PATH;
#  2. the WebGPU path there is Dawn → Vulkan loader → NVIDIA's Vulkan driver. When `ldconfig -p` lists no
#     libvulkan.so.1, the loader packages packed with --with-vulkan-loader (.gpu-gl/*.deb) are unpacked
#     into / and ldconfig is run (the device README's recipe; that machine runs commands as root); when
#     the loader has no NVIDIA ICD in its default folders, VK_DRIVER_FILES (and the EGL vendor file)
#     point at the driver's own under /usr/local/nvidia;
#  3. print the adapter Dawn finds and the CUDA device (nvidia-smi), then run the tests
#     (scripts/test.mjs, the `npm test` runner; arguments after -- go to vitest) and the benchmark
#     (bench/run.ts through tsx). Logs are also written to $OUT when it is set (the device tool's
#     output folder comes back to the caller).
# Usage: bash scripts/run-on-gpu.sh [--archive FILE] [--no-tests] [--no-bench] [--bench SUITES] [-- vitest args]
# One device command may run 10 minutes: run the tests and the benchmark in separate commands when the
# whole suite does not fit (e.g. `--no-bench -- test/cuda-runtime.test.ts`, then `--no-tests`).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

archive=tmp/gpu-pack/wgflow-gpu.tar.xz
tests=1
bench=1
suites=()
vitest_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --archive) archive=$2; shift ;;
    --no-tests) tests=0 ;;
    --no-bench) bench=0 ;;
    --bench) read -r -a suites <<<"$2"; shift ;;
    --) shift; vitest_args=("$@"); break ;;
    *) echo "run-on-gpu: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
log() { echo "run-on-gpu: $*"; }
die() { echo "run-on-gpu: $*" >&2; exit 1; }
logdir=${OUT:-}

# 1. Node and node_modules.
[[ -f $archive ]] || die "no archive at $archive: run 'bash scripts/pack-gpu.sh' here and carry tmp/gpu-pack"
start=$SECONDS
tar -xJf "$archive" || die "could not unpack $archive"
export PATH="$PWD/.gpu-node/bin:$PATH"
log "unpacked $archive in $((SECONDS - start)) s; node $(node --version) at $(command -v node)"

# 2. Vulkan loader and NVIDIA ICD for Dawn.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  if compgen -G '.gpu-gl/*.deb' >/dev/null; then
    log "no libvulkan.so.1: unpacking the packed loaders into /"
    for f in .gpu-gl/*.deb; do dpkg -x "$f" / || die "dpkg -x $f failed (needs root)"; done
    ldconfig
  else
    log "warning: no libvulkan.so.1 and no packed loaders (pack with --with-vulkan-loader); WebGPU tests will find no adapter"
  fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! compgen -G '/usr/share/vulkan/icd.d/nvidia*.json' >/dev/null && ! compgen -G '/etc/vulkan/icd.d/nvidia*.json' >/dev/null && [[ -f $icd ]]; then
  export VK_DRIVER_FILES=$icd
  egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [[ -f $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
  log "VK_DRIVER_FILES=$icd"
fi

# 3. Adapter, tests, benchmark.
node scripts/probe-adapter.mjs || log "warning: Dawn finds no WebGPU adapter"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
command -v nvcc >/dev/null && log "nvcc: $(nvcc --version | tail -1)"
rc=0
if [[ $tests == 1 ]]; then
  start=$SECONDS
  if [[ -n $logdir ]]; then
    node scripts/test.mjs "${vitest_args[@]}" 2>&1 | tee "$logdir/test.log"
    trc=${PIPESTATUS[0]}
    [[ -f test-results/vitest.json ]] && cp test-results/vitest.json "$logdir/"
  else
    node scripts/test.mjs "${vitest_args[@]}"
    trc=$?
  fi
  log "tests exit $trc in $((SECONDS - start)) s"
  ((trc == 0)) || rc=$trc
fi
if [[ $bench == 1 ]]; then
  start=$SECONDS
  if [[ -n $logdir ]]; then
    node node_modules/tsx/dist/cli.mjs bench/run.ts "${suites[@]}" 2>&1 | tee "$logdir/bench.log"
    brc=${PIPESTATUS[0]}
    cp bench/results/*.md "$logdir/" 2>/dev/null
  else
    node node_modules/tsx/dist/cli.mjs bench/run.ts "${suites[@]}"
    brc=$?
  fi
  log "bench exit $brc in $((SECONDS - start)) s"
  ((brc == 0)) || rc=$brc
fi
exit "$rc"
