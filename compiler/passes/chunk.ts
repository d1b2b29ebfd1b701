/**
 * Buffers larger than maxBufferSize become several buffers ("chunks") of C bytes each (the last one
 * shorter), C the largest multiple of the binding window (passes/bind.ts) that fits maxBufferSize.
 * Binding windows are window-aligned and never larger than a window, so each lies inside one chunk:
 * a binding moves to its chunk with the offset taken relative to it. Copies are split chunk by chunk;
 * inputs, outputs and persistent tensors on a chunked buffer list their chunks, which the runtime
 * reads and writes in order. A ProgramSpec → ProgramSpec pass; programs without such buffers come
 * back unchanged.
 */
import type { BufferSpec, KernelSpec, ProgramSpec, StepSpec, TensorSpec } from '../../runtime/program.js';
import { WgflowError } from '../errors.js';
import type { DeviceLimits } from '../limits.js';
import { windowBytes } from './bind.js';

/** Bytes of one chunk of a buffer over maxBufferSize. */
export function chunkBytes(limits: DeviceLimits): number {
  const w = windowBytes(limits);
  const c = Math.floor(limits.maxBufferSize / w) * w;
  if (c <= 0)
    throw new WgflowError(
      `maxBufferSize ${limits.maxBufferSize} is smaller than one binding window (${w} bytes): cannot split buffers`,
    );
  return c;
}

export function chunkBuffers(spec: ProgramSpec, limits: DeviceLimits): ProgramSpec {
  if (!spec.buffers.some((b) => b.bytes > limits.maxBufferSize)) return spec;
  const C = chunkBytes(limits);
  const buffers: BufferSpec[] = [];
  const chunksOf: number[][] = [];
  for (const b of spec.buffers) {
    const ids: number[] = [];
    const n = b.bytes > limits.maxBufferSize ? Math.ceil(b.bytes / C) : 1;
    for (let q = 0; q < n; q++) {
      const bytes = n === 1 ? b.bytes : Math.min(C, b.bytes - q * C);
      const id = buffers.length;
      // init and data stay with the tensor (the runtime writes them across the chunks)
      const base: BufferSpec = { id, bytes, role: b.role, dtype: b.dtype };
      const extra =
        n === 1
          ? { ...(b.init ? { init: b.init } : {}), ...(b.data ? { data: b.data } : {}) }
          : q === 0 && b.init
            ? { init: b.init }
            : {};
      const data = n > 1 && b.data ? { data: b.data.slice((q * C) / 4, (q * C + bytes) / 4) } : {};
      buffers.push({ ...base, ...extra, ...data });
      ids.push(id);
    }
    chunksOf.push(ids);
  }
  const kernels: KernelSpec[] = spec.kernels.map((k) => {
    const windows: [number, number][] = [];
    const bindings = k.bindings.map((b, j) => {
      const ids = chunksOf[b] as number[];
      const w = k.windows?.[j] ?? [0, spec.buffers[b]?.bytes ?? 0];
      const q = Math.floor(w[0] / C);
      if (ids.length > 1 && w[0] + w[1] > (q + 1) * C)
        throw new Error(`internal: kernel ${k.name} binding ${j} straddles a chunk boundary`);
      windows.push([w[0] - q * C, w[1]]);
      return ids[ids.length > 1 ? q : 0] as number;
    });
    return { ...k, bindings, windows };
  });
  const steps: StepSpec[] = spec.steps.flatMap((s): StepSpec[] => {
    if (s.kind === 'dispatch') return [s];
    const src = chunksOf[s.src] as number[];
    const dst = chunksOf[s.dst] as number[];
    if (src.length === 1 && dst.length === 1) return [{ ...s, src: src[0] as number, dst: dst[0] as number }];
    if (s.bytesDim !== undefined)
      throw new WgflowError('a copy of a run-time-sized tensor over maxBufferSize is not supported yet');
    const out: StepSpec[] = [];
    for (let q = 0; q * C < s.bytes; q++)
      out.push({ kind: 'copy', src: src[q] as number, dst: dst[q] as number, bytes: Math.min(C, s.bytes - q * C) });
    return out;
  });
  const tensor = <T extends TensorSpec>(t: T): T => {
    const ids = chunksOf[t.buffer] as number[];
    return ids.length > 1 ? { ...t, buffer: ids[0] as number, chunks: ids } : { ...t, buffer: ids[0] as number };
  };
  return {
    ...spec,
    buffers,
    kernels,
    steps,
    inputs: spec.inputs.map(tensor),
    outputs: spec.outputs.map(tensor),
    persistent: spec.persistent.map(tensor),
    stats: { ...spec.stats, maxBufferBytes: Math.max(4, ...buffers.map((b) => b.bytes)) },
  };
}
