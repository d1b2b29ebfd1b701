/** A small helper to write ONNX graphs in code: nodes get generated output names, constants become initializers. */
import type { OnnxGraph, OnnxInitializer, OnnxNode, OnnxValue } from './onnx-encode.js';

export interface OnnxAttrs {
  readonly int?: Readonly<Record<string, number>>;
  readonly ints?: Readonly<Record<string, readonly number[]>>;
  readonly float?: Readonly<Record<string, number>>;
  readonly string?: Readonly<Record<string, string>>;
}

export class OnnxBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private n = 0;

  /** One node with one output; returns the output name. */
  op(op: string, inputs: readonly string[], attrs: OnnxAttrs = {}, name?: string): string {
    const out = name ?? `${op.toLowerCase()}_${this.n++}`;
    this.nodes.push({ op, inputs, outputs: [out], ...attrs });
    return out;
  }

  /** One node with several outputs. */
  multi(op: string, inputs: readonly string[], outputs: number, attrs: OnnxAttrs = {}): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => `${op.toLowerCase()}_${this.n}_${i}`);
    this.n++;
    this.nodes.push({ op, inputs, outputs: outs, ...attrs });
    return outs;
  }

  /** A float32 initializer. */
  f32(data: ArrayLike<number>, shape: readonly number[], name?: string): string {
    const n = name ?? `const_${this.n++}`;
    this.initializers.push({ name: n, shape, data: Float32Array.from(data) });
    return n;
  }

  /** An int64 initializer. */
  i64(data: readonly number[], shape: readonly number[] = [data.length]): string {
    const n = `const_${this.n++}`;
    this.initializers.push({ name: n, shape, data: BigInt64Array.from(data.map((v) => BigInt(v))) });
    return n;
  }

  // ------------------------------------------------------------ shorthands

  add = (a: string, b: string) => this.op('Add', [a, b]);
  sub = (a: string, b: string) => this.op('Sub', [a, b]);
  mul = (a: string, b: string) => this.op('Mul', [a, b]);
  div = (a: string, b: string) => this.op('Div', [a, b]);
  /** Slice along one axis [start, end). */
  slice = (x: string, axis: number, start: number, end: number) =>
    this.op('Slice', [x, this.i64([start]), this.i64([end]), this.i64([axis])]);
  reshape = (x: string, shape: readonly number[]) => this.op('Reshape', [x, this.i64([...shape])]);
  /** Cast to float32 (1), int32 (6), int64 (7) or bool (9). */
  cast = (x: string, to: 1 | 6 | 7 | 9) => this.op('Cast', [x], { int: { to } });

  graph(inputs: readonly OnnxValue[], outputs: readonly OnnxValue[]): OnnxGraph {
    return { inputs, outputs, initializers: this.initializers, nodes: this.nodes };
  }
}
