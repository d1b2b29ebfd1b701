/**
 * Runs a program's generated CUDA C on the host, for tests on machines without a GPU: the kernel
 * files compile as C++20 with test/cuda-host-shim.h (threads of a block are OS threads, __shared__
 * arrays are function statics, __syncthreads a std::barrier; blocks run in turn; kernels without a
 * barrier run their threads in a plain loop), and a generated main() executes the ProgramSpec's steps
 * over buffers laid out as the CUDA session allocates them. It checks the CUDA text's semantics
 * (indexing, wg_linear folding, barriers, casts, wrapping); it says nothing about GPU speed or about
 * how a GPU's memory model treats the same code.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CompiledKernels, renderCudaProgram } from '../compiler/cuda-artifact.js';
import { CUDA_PRELUDE } from '../compiler/kernel/cuda.js';
import { initialValues } from '../runtime/init.js';
import type { DTypeName, ProgramSpec } from '../runtime/program.js';
import { isShaped, RunSizer, type ShapedFeed } from '../runtime/run-sizes.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CTYPE = { f32: 'float', i32: 'int', u32: 'unsigned int' } as const;

const HEAD = `#include "cuda-host-shim.h"
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
thread_local wgf_uint3 threadIdx;
thread_local wgf_uint3 blockIdx;
wgf_uint3 blockDim;
wgf_uint3 gridDim;
std::barrier<>* wgf_block_barrier;
struct KernelEntry { void (*call)(void* const*); bool sync; };
`;

const MAIN = `
static void set_ids(unsigned long long blk, unsigned t, wgf_uint3 g, wgf_uint3 b) {
  blockIdx = {(unsigned)(blk % g.x), (unsigned)((blk / g.x) % g.y), (unsigned)(blk / ((unsigned long long)g.x * g.y))};
  threadIdx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
}

static void launch(const KernelEntry& k, wgf_uint3 g, wgf_uint3 b, void* const* args) {
  gridDim = g;
  blockDim = b;
  const unsigned threads = b.x * b.y * b.z;
  const unsigned long long blocks = (unsigned long long)g.x * g.y * g.z;
  if (!k.sync) {
    for (unsigned long long blk = 0; blk < blocks; blk++)
      for (unsigned t = 0; t < threads; t++) { set_ids(blk, t, g, b); k.call(args); }
    return;
  }
  std::barrier<> bar(threads);
  wgf_block_barrier = &bar;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back([&, t] {
      for (unsigned long long blk = 0; blk < blocks; blk++) {
        set_ids(blk, t, g, b);
        k.call(args);
        bar.arrive_and_wait();
      }
    });
  for (auto& th : pool) th.join();
}

static unsigned rd(FILE* f) {
  unsigned v;
  if (fread(&v, 4, 1, f) != 1) { fprintf(stderr, "plan truncated\\n"); exit(2); }
  return v;
}

int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "rb");
  const unsigned nbuf = rd(f);
  std::vector<std::vector<unsigned>> bufs(nbuf);
  for (auto& b : bufs) b.assign(rd(f) / 4, 0u);
  for (unsigned n = rd(f); n > 0; n--) {
    const unsigned id = rd(f), bytes = rd(f);
    if (fread(bufs[id].data(), 1, bytes, f) != bytes) return 2;
  }
  for (unsigned n = rd(f); n > 0; n--) {
    if (rd(f) == 0) {
      const unsigned k = rd(f);
      wgf_uint3 g = {rd(f), rd(f), rd(f)};
      wgf_uint3 b = {rd(f), rd(f), rd(f)};
      std::vector<void*> args(rd(f));
      for (auto& a : args) {
        const unsigned id = rd(f), off = rd(f);  // a window of a split tensor starts at a byte offset
        a = bufs[id].data() + off / 4;
      }
      if (g.x && g.y && g.z) launch(kernels[k], g, b, args.data());
    } else {
      const unsigned src = rd(f), dst = rd(f), bytes = rd(f);
      memcpy(bufs[dst].data(), bufs[src].data(), bytes);
    }
  }
  fclose(f);
  FILE* o = fopen(argv[2], "wb");
  for (auto& b : bufs) fwrite(b.data(), 4, b.size(), o);
  fclose(o);
  return 0;
}
`;

/** Writes main.cpp for the program and compiles it with g++; returns the executable. */
export function buildEmulator(input: CompiledKernels, dir: string, cxx = 'g++'): string {
  const src = renderCudaProgram(input, 1);
  const parts = [HEAD, CUDA_PRELUDE.replace('#pragma once', '')];
  for (const f of src.functions) parts.push(f.source);
  const wrappers = src.entries.map((c, i) => {
    const args = [
      ...c.params.map((p, j) => `(${p.write ? '' : 'const '}${CTYPE[p.t]}*)a[${j}]`),
      ...(c.sizes > 0 ? [`(const unsigned*)a[${c.params.length}]`] : []),
    ].join(', ');
    return `static void call_${i}(void* const* a) { ${c.function}(${args}); }`;
  });
  parts.push(...wrappers);
  parts.push(
    `static const KernelEntry kernels[] = {\n${src.entries
      .map((c, i) => `  {call_${i}, ${c.source.includes('__syncthreads') ? 'true' : 'false'}},`)
      .join('\n')}\n};`,
  );
  const main = join(dir, 'main.cpp');
  writeFileSync(main, `${parts.join('\n\n')}\n${MAIN}`);
  const exe = join(dir, 'emulator');
  execFileSync(
    cxx,
    ['-std=c++20', process.env.WGFLOW_EMU_OPT ?? '-O0', '-pthread', '-w', `-I${HERE}`, '-o', exe, main],
    { stdio: 'pipe' },
  );
  return exe;
}

function bytesOf(dtype: DTypeName, values: ArrayLike<number>): Buffer {
  const a =
    dtype === 'f32' ? Float32Array.from(values) : dtype === 'i32' ? Int32Array.from(values) : Uint32Array.from(values);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Runs one step of `spec` in the emulator: params/state from `feeds` (else their InitSpec), inputs from
 * `feeds`; returns every output, and every param/state after the step's updates, by name.
 */
export function runEmulator(
  exe: string,
  spec: ProgramSpec,
  feeds: Readonly<Record<string, ArrayLike<number> | ShapedFeed>>,
  dir: string,
): {
  outputs: Record<string, Float32Array | Int32Array | Uint32Array>;
  persistent: Record<string, Float32Array | Int32Array | Uint32Array>;
} {
  const words: number[] = [];
  const chunks: Buffer[] = [];
  const flush = () => {
    chunks.push(Buffer.from(Uint32Array.from(words).buffer));
    words.length = 0;
  };
  // run-time sizes: evaluated as the sessions do, each kernel's block an extra buffer after the program's
  const run = new RunSizer(spec, 65535).sizesFor(feeds);
  const sizeBufs = spec.kernels.map((_, i) => run.sizes[i] as Uint32Array);
  const sizes = [
    ...spec.buffers.map((b) => Math.max(4, Math.ceil(b.bytes / 4) * 4)),
    ...sizeBufs.map((v) => Math.max(4, v.length * 4)),
  ];
  words.push(sizes.length, ...sizes);
  const inits: [number, Buffer][] = [];
  for (const b of spec.buffers) if (b.data) inits.push([b.id, bytesOf(b.dtype, b.data)]);
  const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  for (const p of spec.persistent) {
    const given = feeds[p.name];
    const init = spec.buffers[p.buffer]?.init;
    if (given) inits.push([p.buffer, bytesOf(p.dtype, isShaped(given) ? (given.data as ArrayLike<number>) : given)]);
    else if (init) inits.push([p.buffer, bytesOf('f32', initialValues(init, count(p.shape)))]);
  }
  for (const i of spec.inputs) {
    const v = feeds[i.name];
    if (!v) throw new Error(`emulator: missing input ${i.name}`);
    inits.push([i.buffer, bytesOf(i.dtype, isShaped(v) ? (v.data as ArrayLike<number>) : v)]);
  }
  sizeBufs.forEach((v, i) => {
    if (v.length > 0) inits.push([spec.buffers.length + i, Buffer.from(v.buffer, v.byteOffset, v.byteLength)]);
  });
  words.push(inits.length);
  for (const [id, data] of inits) {
    words.push(id, data.length);
    flush();
    chunks.push(data);
  }
  words.push(spec.steps.length);
  for (const [si, st] of spec.steps.entries()) {
    if (st.kind === 'dispatch') {
      const k = spec.kernels[st.kernel] as ProgramSpec['kernels'][number];
      const args = k.bindings.flatMap((b, j) => [b, k.windows?.[j]?.[0] ?? 0]);
      if ((k.sizes?.length ?? 0) > 0) args.push(spec.buffers.length + st.kernel, 0);
      words.push(
        0,
        st.kernel,
        ...(run.dispatch[st.kernel] ?? k.dispatch),
        ...k.workgroupSize,
        args.length / 2,
        ...args,
      );
    } else words.push(1, st.src, st.dst, run.copyBytes[si] ?? st.bytes);
  }
  flush();
  const plan = join(dir, 'plan.bin');
  const out = join(dir, 'buffers.bin');
  writeFileSync(plan, Buffer.concat(chunks));
  execFileSync(exe, [plan, out], { stdio: 'pipe', timeout: 600_000 });
  const all = readFileSync(out);
  const offsets: number[] = [];
  let at = 0;
  for (const s of sizes) {
    offsets.push(at);
    at += s;
  }
  const read = (t: ProgramSpec['outputs'][number]) => {
    const start = all.byteOffset + (offsets[t.buffer] as number);
    const ab = all.buffer.slice(start, start + count(run.shapeOf(t)) * 4);
    return t.dtype === 'f32' ? new Float32Array(ab) : t.dtype === 'i32' ? new Int32Array(ab) : new Uint32Array(ab);
  };
  const outputs: Record<string, Float32Array | Int32Array | Uint32Array> = {};
  for (const o of spec.outputs) outputs[o.name] = read(o);
  const persistent: Record<string, Float32Array | Int32Array | Uint32Array> = {};
  for (const p of spec.persistent) persistent[p.name] = read(p);
  return { outputs, persistent };
}
