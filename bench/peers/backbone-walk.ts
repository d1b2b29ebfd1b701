/**
 * Reads a conv/pool stack out of a wgflow graph (from its input node to a feature node) as a list of
 * layers, so the peers run exactly the model wgflow compiled (the models change; the peers follow).
 * Recognized: conv2d with a param weight (dilation 1, groups 1), optionally + reshape(param bias),
 * optionally ReLU; max_pool2d. Anything else (e.g. band splitting's slice/concat) is an error naming
 * the node, to be taught here.
 */
import type { Graph, Node } from '../../index.js';

export interface ConvLayer {
  readonly kind: 'conv';
  readonly weight: string;
  readonly bias: string | null;
  /** [cout, cin, kh, kw]. */
  readonly shape: readonly [number, number, number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly relu: boolean;
}

export interface PoolLayer {
  readonly kind: 'maxpool';
  readonly kernel: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly ceilMode: boolean;
}

export type StackLayer = ConvLayer | PoolLayer;

const pair = (v: unknown, what: string, n: Node): [number, number] => {
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number'))
    return [v[0] as number, v[1] as number];
  throw new Error(`backbone walk: node %${n.id} (${n.op}) has no numeric ${what} pair: ${JSON.stringify(v)}`);
};

function paramName(g: Graph, id: number, what: string): string {
  const n = g.node(id);
  if (n.op !== 'param' || n.name === undefined)
    throw new Error(`backbone walk: the ${what} of a conv is %${id} (${n.op}), not a param`);
  return n.name;
}

function conv(g: Graph, n: Node, relu: boolean): { layer: ConvLayer; input: number } {
  let c = n;
  let bias: string | null = null;
  if (n.op === 'add') {
    const [a, b] = n.inputs.map((i) => g.node(i)) as [Node, Node];
    const [cv, bv] = a.op === 'conv2d' ? [a, b] : [b, a];
    if (cv.op !== 'conv2d' || bv.op !== 'reshape')
      throw new Error(`backbone walk: add %${n.id} is not conv2d + reshape(bias) (${a.op}, ${b.op})`);
    bias = paramName(g, bv.inputs[0] as number, 'bias');
    c = cv;
  }
  if (c.op !== 'conv2d') throw new Error(`backbone walk: unsupported op ${c.op} at %${c.id}`);
  const dil = pair(c.attrs.dilation, 'dilation', c);
  if (dil[0] !== 1 || dil[1] !== 1 || c.attrs.groups !== 1)
    throw new Error(`backbone walk: conv %${c.id} has dilation/groups other than 1`);
  const wId = c.inputs[1] as number;
  return {
    layer: {
      kind: 'conv',
      weight: paramName(g, wId, 'weight'),
      bias,
      shape: g.node(wId).type.shape as [number, number, number, number],
      stride: pair(c.attrs.stride, 'stride', c),
      padding: pair(c.attrs.padding, 'padding', c),
      relu,
    },
    input: c.inputs[0] as number,
  };
}

/** The layers from node `from` (exclusive, e.g. the image input) to node `to` (the features), in order. */
export function walkStack(g: Graph, from: number, to: number): StackLayer[] {
  const layers: StackLayer[] = [];
  let cur = to;
  while (cur !== from) {
    const n = g.node(cur);
    if (n.op === 'max_pool2d') {
      layers.unshift({
        kind: 'maxpool',
        kernel: pair(n.attrs.kernel, 'kernel', n),
        stride: pair(n.attrs.stride, 'stride', n),
        padding: pair(n.attrs.padding, 'padding', n),
        ceilMode: n.attrs.ceilMode === true,
      });
      cur = n.inputs[0] as number;
    } else if (n.op === 'relu') {
      const r = conv(g, g.node(n.inputs[0] as number), true);
      layers.unshift(r.layer);
      cur = r.input;
    } else if (n.op === 'add' || n.op === 'conv2d') {
      const r = conv(g, n, false);
      layers.unshift(r.layer);
      cur = r.input;
    } else {
      throw new Error(
        `backbone walk: unsupported op ${n.op} at %${n.id} (teach bench/peers/backbone-walk.ts, e.g. band splitting)`,
      );
    }
  }
  return layers;
}

/** Conv + matmul work of a graph in GFLOP (2 per multiply-add), as bench/frcnn-vgg16.ts counts it. */
export function convMatmulGflop(g: Graph): number {
  let flops = 0;
  for (const n of g.nodes) {
    if (n.op === 'conv2d') {
      const w = g.node(n.inputs[1] as number).type.shape;
      const o = n.type.shape;
      flops += 2 * o.reduce((a, b) => a * b, 1) * (w[1] as number) * (w[2] as number) * (w[3] as number);
    } else if (n.op === 'matmul') {
      const a = g.node(n.inputs[0] as number).type.shape;
      const o = n.type.shape;
      const kd = n.attrs.transA ? (a[a.length - 2] as number) : (a[a.length - 1] as number);
      flops += 2 * o.reduce((x, y) => x * y, 1) * kd;
    }
  }
  return flops / 1e9;
}
