/**
 * Fusion by TVM's op patterns, as tree fusion into a single consumer:
 * - elementwise ops of the same shape fuse into one kernel (a producer joins when its only consumer is in the group);
 * - a gemm (matmul/conv) absorbs the elementwise chain that consumes it (its epilogue);
 * - a reduction absorbs an elementwise prologue (on its input) and an elementwise epilogue (on its output);
 * - opaque ops, views and sources end fusion.
 * A group never binds more storage buffers than the device allows.
 */
import type { Graph, Node } from '../ir.js';
import { getOp } from '../registry.js';
import { type DimShape, dimsOf, sameDims } from '../types.js';

export interface Group {
  readonly index: number;
  /** The node whose value the group stores. */
  readonly root: number;
  /** The reduce / gemm / opaque node, if any. */
  readonly anchor: number | undefined;
  /** Elementwise nodes computed inside the group (epilogue and prologue), excluding the anchor. */
  readonly members: ReadonlySet<number>;
  /** Nodes read from buffers (external inputs). */
  readonly leaves: readonly number[];
}

export interface FusionResult {
  readonly groups: Group[];
  /** node id → group index (only for nodes computed by a kernel). */
  readonly groupOf: (number | undefined)[];
}

const kindOf = (n: Node) => getOp(n.op).kind;

/** A scalar constant is inlined as a literal inside fused expressions. */
export function isScalarConst(n: Node): boolean {
  return n.op === 'const' && typeof n.attrs.value === 'number';
}

/**
 * `bindingsOf(id)`: storage bindings the buffer of node `id` takes (more than one for a tensor split
 * across bindings; default 1).
 */
export function fuse(
  graph: Graph,
  pinned: ReadonlySet<number>,
  maxBindings: number,
  enabled = true,
  bindingsOf: (id: number) => number = () => 1,
): FusionResult {
  const consumers = graph.consumers();
  const groupOf: (number | undefined)[] = new Array(graph.nodes.length);
  const groups: Group[] = [];
  const external = (members: Set<number>, anchor: number | undefined): number[] => {
    const leaves = new Set<number>();
    const inside = (id: number) => members.has(id) || id === anchor;
    for (const m of [...members, ...(anchor !== undefined ? [anchor] : [])]) {
      for (const i of graph.node(m).inputs) if (!inside(i) && !isScalarConst(graph.node(i))) leaves.add(i);
    }
    return [...leaves];
  };
  // A producer may join when it has exactly one consumer, which is in the group, and is not pinned (an output/update).
  const single = (p: number, members: Set<number>, anchor: number | undefined) => {
    const cs = new Set(consumers[p] as number[]);
    const only = [...cs][0] as number;
    return !pinned.has(p) && cs.size === 1 && (members.has(only) || only === anchor);
  };

  for (let id = graph.nodes.length - 1; id >= 0; id--) {
    const n = graph.node(id);
    const kind = kindOf(n);
    if (groupOf[id] !== undefined || kind === 'source' || kind === 'view') continue;
    const members = new Set<number>();
    let anchor: number | undefined;
    if (kind === 'elementwise') members.add(id);
    else anchor = id;

    const fits = (candidateMembers: Set<number>, candidateAnchor: number | undefined) =>
      external(candidateMembers, candidateAnchor).reduce((n, leaf) => n + bindingsOf(leaf), 0) + bindingsOf(id) <=
      maxBindings;

    // Grow the epilogue / elementwise tree downwards from the root.
    const grow = (refShape: DimShape, allowAnchor: boolean) => {
      let changed = true;
      while (changed && enabled) {
        changed = false;
        for (const m of [...members]) {
          for (const p of graph.node(m).inputs) {
            if (members.has(p) || p === anchor || groupOf[p] !== undefined) continue;
            const pn = graph.node(p);
            const pk = kindOf(pn);
            if (!single(p, members, anchor)) continue;
            if (!sameDims(dimsOf(pn.type), refShape)) continue;
            if (pk === 'elementwise') {
              const trial = new Set(members).add(p);
              if (!fits(trial, anchor)) continue;
              members.add(p);
              changed = true;
            } else if (allowAnchor && anchor === undefined && (pk === 'gemm' || pk === 'reduce')) {
              if (!fits(members, p)) continue;
              anchor = p;
              changed = true;
            }
          }
        }
      }
    };
    grow(dimsOf(n.type), true);
    const epilogue = new Set(members);
    // A reduction also takes the elementwise tree on its input (its prologue).
    if (enabled && anchor !== undefined && kindOf(graph.node(anchor)) === 'reduce') {
      const a = graph.node(anchor);
      const inp = a.inputs[0] as number;
      const ip = graph.node(inp);
      if (
        kindOf(ip) === 'elementwise' &&
        groupOf[inp] === undefined &&
        single(inp, members, anchor) &&
        fits(new Set(members).add(inp), anchor)
      ) {
        const before = new Set(members);
        members.add(inp);
        // grow only the prologue part: temporarily restrict to the input's shape
        let changed = true;
        while (changed) {
          changed = false;
          for (const m of [...members]) {
            if (epilogue.has(m)) continue;
            for (const p of graph.node(m).inputs) {
              if (members.has(p) || p === anchor || groupOf[p] !== undefined) continue;
              const pn = graph.node(p);
              if (
                kindOf(pn) !== 'elementwise' ||
                !single(p, members, anchor) ||
                !sameDims(dimsOf(pn.type), dimsOf(ip.type))
              )
                continue;
              const trial = new Set(members).add(p);
              if (!fits(trial, anchor)) continue;
              members.add(p);
              changed = true;
            }
          }
        }
        if (!fits(members, anchor)) for (const m of members) if (!before.has(m)) members.delete(m);
      }
    }
    const index = groups.length;
    const g: Group = { index, root: id, anchor, members, leaves: external(members, anchor) };
    groups.push(g);
    for (const m of members) groupOf[m] = index;
    if (anchor !== undefined) groupOf[anchor] = index;
  }
  return { groups, groupOf };
}

/** Nodes of a group's prologue (members not in the epilogue), i.e. evaluated at the anchor input's coordinates. */
export function prologueOf(graph: Graph, g: Group): Set<number> {
  const epi = new Set<number>();
  if (g.anchor === undefined) return epi;
  const stack = [g.root];
  while (stack.length > 0) {
    const id = stack.pop() as number;
    if (!g.members.has(id) || epi.has(id)) continue;
    epi.add(id);
    stack.push(...graph.node(id).inputs);
  }
  return new Set([...g.members].filter((m) => !epi.has(m)));
}

/**
 * Orders groups so every group runs after the groups it reads; `late` groups (writes of persistent
 * state) go as late as dependencies allow, so readers of the old values run first.
 */
export function schedule(graph: Graph, fr: FusionResult, late: ReadonlySet<number>): number[] {
  const { groups, groupOf } = fr;
  const deps = groups.map(() => new Set<number>());
  const baseOf = (id: number): number | undefined => {
    let n = graph.node(id);
    while (kindOf(n) === 'view') n = graph.node(n.inputs[0] as number);
    return groupOf[n.id];
  };
  for (const g of groups) {
    const inside = new Set([...g.members, ...(g.anchor !== undefined ? [g.anchor] : [])]);
    for (const m of inside) {
      for (const i of graph.node(m).inputs) {
        if (inside.has(i)) continue;
        const dg = baseOf(i);
        if (dg !== undefined && dg !== g.index) deps[g.index]?.add(dg);
      }
    }
  }
  const indeg = deps.map((d) => d.size);
  const users = groups.map(() => [] as number[]);
  deps.forEach((d, gi) => {
    for (const x of d) users[x]?.push(gi);
  });
  const order: number[] = [];
  const ready = groups.filter((g) => indeg[g.index] === 0).map((g) => g.index);
  const pick = (): number => {
    // earliest-declared non-late group first; late groups only when nothing else is ready
    let best = -1;
    for (let k = 0; k < ready.length; k++) {
      const gi = ready[k] as number;
      const b = ready[best] as number;
      const key = (x: number) => (late.has(x) ? 1e9 : 0) + (groups[x] as Group).root;
      if (best < 0 || key(gi) < key(b)) best = k;
    }
    return ready.splice(best, 1)[0] as number;
  };
  while (ready.length > 0) {
    const gi = pick();
    order.push(gi);
    for (const u of users[gi] as number[]) {
      indeg[u] = (indeg[u] as number) - 1;
      if (indeg[u] === 0) ready.push(u);
    }
  }
  if (order.length !== groups.length) throw new Error('internal: fusion produced a cycle');
  return order;
}
