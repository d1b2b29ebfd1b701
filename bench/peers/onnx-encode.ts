/**
 * A minimal ONNX ModelProto encoder (protobuf wire format, only the fields the peer benchmarks need):
 * float32 / int64 graph inputs and outputs (static dims, or named symbolic dims for data-dependent
 * sizes), float32 / int64 initializers as raw_data, nodes with int, ints, float and string attributes.
 * Field numbers are from onnx/onnx.proto (ONNX 1.x).
 */

type Field = Uint8Array;

function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** Varint field (wire type 0). */
const vf = (num: number, v: number | bigint): Field => Uint8Array.from([...varint(num << 3), ...varint(v)]);
/** Length-delimited field (wire type 2): bytes, string or embedded message. */
function lf(num: number, body: Uint8Array | string): Field {
  const b = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return concat([Uint8Array.from([...varint((num << 3) | 2), ...varint(b.length)]), b]);
}
const msg = (...fields: Field[]) => concat(fields);

export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly ints?: Readonly<Record<string, readonly number[]>>;
  readonly int?: Readonly<Record<string, number>>;
  readonly float?: Readonly<Record<string, number>>;
  readonly string?: Readonly<Record<string, string>>;
}

/** A graph input/output: numbers are fixed dims, strings name a symbolic (data-dependent) dim. */
export interface OnnxValue {
  readonly name: string;
  readonly shape: readonly (number | string)[];
  /** Default 'float32'. */
  readonly dtype?: 'float32' | 'int64';
}

export interface OnnxInitializer {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

export interface OnnxGraph {
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
  readonly initializers?: readonly OnnxInitializer[];
  readonly nodes: readonly OnnxNode[];
}

// TensorProto.DataType
const FLOAT = 1;
const INT64 = 7;
// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

/** Fixed32 field (wire type 5), little-endian float32. */
function f32f(num: number, v: number): Field {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return concat([Uint8Array.from(varint((num << 3) | 5)), b]);
}

// ValueInfoProto{name=1, type=2}; TypeProto{tensor_type=1}; TypeProto.Tensor{elem_type=1, shape=2};
// TensorShapeProto{dim=1}; Dimension{dim_value=1, dim_param=2}.
const valueInfo = (v: OnnxValue) =>
  msg(
    lf(1, v.name),
    lf(
      2,
      lf(
        1,
        msg(
          vf(1, v.dtype === 'int64' ? INT64 : FLOAT),
          lf(2, msg(...v.shape.map((d) => lf(1, typeof d === 'number' ? vf(1, d) : lf(2, d))))),
        ),
      ),
    ),
  );

/** Encodes an opset-17 model (IR version 8). */
export function encodeOnnxModel(graph: OnnxGraph, name = 'wgflow-peer'): Uint8Array {
  const nodes = graph.nodes.map((n, i) => {
    // AttributeProto{name=1, f=2, i=3, s=4, ints=8, type=20}
    const attrs = [
      ...Object.entries(n.int ?? {}).map(([k, v]) => msg(lf(1, k), vf(3, v), vf(20, ATTR_INT))),
      ...Object.entries(n.ints ?? {}).map(([k, vs]) => msg(lf(1, k), ...vs.map((v) => vf(8, v)), vf(20, ATTR_INTS))),
      ...Object.entries(n.float ?? {}).map(([k, v]) => msg(lf(1, k), f32f(2, v), vf(20, ATTR_FLOAT))),
      ...Object.entries(n.string ?? {}).map(([k, v]) => msg(lf(1, k), lf(4, v), vf(20, ATTR_STRING))),
    ];
    // NodeProto{input=1, output=2, name=3, op_type=4, attribute=5}
    return msg(
      ...n.inputs.map((s) => lf(1, s)),
      ...n.outputs.map((s) => lf(2, s)),
      lf(3, `${n.op}_${i}`),
      lf(4, n.op),
      ...attrs.map((a) => lf(5, a)),
    );
  });
  // TensorProto{dims=1, data_type=2, name=8, raw_data=9} (raw_data is little-endian float32 / int64)
  const inits = (graph.initializers ?? []).map((t) =>
    msg(
      ...t.shape.map((d) => vf(1, d)),
      vf(2, t.data instanceof BigInt64Array ? INT64 : FLOAT),
      lf(8, t.name),
      lf(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    ),
  );
  // GraphProto{node=1, name=2, initializer=5, input=11, output=12}
  const g = msg(
    ...nodes.map((n) => lf(1, n)),
    lf(2, name),
    ...inits.map((t) => lf(5, t)),
    ...graph.inputs.map((v) => lf(11, valueInfo(v))),
    ...graph.outputs.map((v) => lf(12, valueInfo(v))),
  );
  // ModelProto{ir_version=1, producer_name=2, graph=7, opset_import=8}; OperatorSetIdProto{domain=1, version=2}
  return msg(vf(1, 8), lf(2, 'wgflow-bench'), lf(7, g), lf(8, msg(lf(1, ''), vf(2, 17))));
}
