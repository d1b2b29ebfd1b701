/**
 * Memory planning by liveness: each temporary value gets a physical buffer when its kernel runs and
 * gives it back after its last reader; later values reuse freed buffers (growing one when needed).
 * Persistent tensors (inputs, params, state, constants, outputs) keep their own buffers.
 */

export interface LogicalBuffer {
  readonly name: string;
  readonly bytes: number;
  /** temp values are planned; everything else gets a dedicated buffer. */
  readonly role: 'input' | 'param' | 'state' | 'const' | 'temp';
  /** Kept alive to the end (outputs, values copied into state at the end). */
  readonly pinned: boolean;
}

export interface StepUse {
  readonly reads: readonly string[];
  readonly writes: readonly string[];
  /** Scratch buffers live during this step only. */
  readonly scratch: readonly { readonly name: string; readonly bytes: number }[];
}

export interface PhysicalBuffer {
  id: number;
  bytes: number;
  readonly role: LogicalBuffer['role'];
  /** The logical buffer that owns a dedicated buffer (persistent ones). */
  readonly owner?: string;
}

export interface MemoryPlan {
  readonly physical: PhysicalBuffer[];
  readonly assign: ReadonlyMap<string, number>;
  readonly peakTempBytes: number;
  readonly tempBufferBytes: number;
  readonly tempBytesUnplanned: number;
}

/**
 * `aliases` maps a logical value to another logical buffer it is written into in place
 * (a state update whose safety the caller has checked).
 */
export function planMemory(
  logical: ReadonlyMap<string, LogicalBuffer>,
  steps: readonly StepUse[],
  aliases: ReadonlyMap<string, string>,
  maxBufferBytes: number,
): MemoryPlan {
  const physical: PhysicalBuffer[] = [];
  const assign = new Map<string, number>();
  const newBuffer = (bytes: number, role: LogicalBuffer['role'], owner?: string): number => {
    const id = physical.length;
    physical.push({ id, bytes: Math.max(4, bytes), role, ...(owner !== undefined ? { owner } : {}) });
    return id;
  };
  for (const lb of logical.values()) {
    if (lb.role !== 'temp') assign.set(lb.name, newBuffer(lb.bytes, lb.role, lb.name));
  }
  const lastUse = new Map<string, number>();
  steps.forEach((s, i) => {
    for (const r of s.reads) lastUse.set(r, i);
    for (const w of s.writes) if (!lastUse.has(w)) lastUse.set(w, i);
  });
  const free: number[] = [];
  let live = 0;
  let peak = 0;
  let unplanned = 0;
  const sizeOf = new Map<string, number>();
  const take = (name: string, bytes: number, pinned: boolean): void => {
    unplanned += bytes;
    live += bytes;
    sizeOf.set(name, bytes);
    if (pinned) {
      assign.set(name, newBuffer(bytes, 'temp'));
      return;
    }
    // best fit: the smallest free buffer that is big enough, else the largest one (grown)
    let best = -1;
    for (let k = 0; k < free.length; k++) {
      const b = physical[free[k] as number] as PhysicalBuffer;
      const cur = best >= 0 ? (physical[free[best] as number] as PhysicalBuffer) : undefined;
      if (!cur) best = k;
      else if (b.bytes >= bytes && (cur.bytes < bytes || b.bytes < cur.bytes)) best = k;
      else if (cur.bytes < bytes && b.bytes > cur.bytes) best = k;
    }
    if (best >= 0) {
      const id = free.splice(best, 1)[0] as number;
      const b = physical[id] as PhysicalBuffer;
      if (b.bytes < bytes && bytes <= maxBufferBytes) b.bytes = bytes;
      if (b.bytes >= bytes) {
        assign.set(name, id);
        return;
      }
      free.push(id);
    }
    assign.set(name, newBuffer(bytes, 'temp'));
  };
  const release = (name: string): void => {
    const id = assign.get(name);
    if (id === undefined) return;
    live -= sizeOf.get(name) ?? 0;
    free.push(id);
  };
  steps.forEach((s, i) => {
    const scratchNames = new Set(s.scratch.map((sc) => sc.name));
    for (const w of s.writes) {
      // scratch buffers are written by their own step's kernels; they are placed below
      if (assign.has(w) || scratchNames.has(w)) continue;
      const alias = aliases.get(w);
      if (alias !== undefined) {
        assign.set(w, assign.get(alias) as number);
        continue;
      }
      const lb = logical.get(w);
      if (!lb) throw new Error(`internal: no logical buffer ${w}`);
      take(w, lb.bytes, lb.pinned);
    }
    for (const sc of s.scratch) take(sc.name, sc.bytes, false);
    peak = Math.max(peak, live);
    for (const sc of s.scratch) release(sc.name);
    const done = new Set([...s.reads, ...s.writes]);
    for (const name of done) {
      const lb = logical.get(name);
      if (lb?.role !== 'temp' || lb.pinned || aliases.has(name)) continue;
      if (lastUse.get(name) === i) release(name);
    }
  });
  const temps = physical.filter((p) => p.role === 'temp');
  return {
    physical,
    assign,
    peakTempBytes: peak,
    tempBufferBytes: temps.reduce((n, p) => n + p.bytes, 0),
    tempBytesUnplanned: unplanned,
  };
}
