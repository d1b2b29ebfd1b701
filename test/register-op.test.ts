/**
 * A third-party op registered from outside the package through the public entry (index.ts only):
 * shape rule, CPU reference, gradient and a GPU lowering written with the exported kernel builder and
 * kernel kit; the GPU result against the CPU reference, and the registration errors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  closeDevice,
  compile,
  fail,
  GraphBuilder,
  getDevice,
  grad,
  interpret,
  kernel as K,
  kit,
  limitsFrom,
  type OpDef,
  registeredOps,
  registerOp,
  Session,
  ShapeError,
  type Tensor,
  WgflowError,
} from '../index.js';

/** y = scale · x³ + x (f32, any shape): nothing the built-in ops provide as one op. */
const CUBE: OpDef = {
  name: 'test_plugin_scaled_cube',
  kind: 'opaque',
  infer: ([x], attrs) => {
    if (x?.dtype !== 'f32') fail(`x must be f32, got ${x?.dtype ?? 'nothing'}`);
    if (typeof attrs.scale !== 'number') fail(`attribute scale must be a number, got ${JSON.stringify(attrs.scale)}`);
    return { shape: x.shape, dtype: 'f32' };
  },
  cpu: ({ inputs, attrs }) => {
    const s = attrs.scale as number;
    return (inputs[0] as { data: Float64Array }).data.map((v) => s * v * v * v + v);
  },
  grad: ({ inputs, attrs, dy }) => {
    const x = inputs[0] as Tensor;
    return [
      dy.mul(
        x
          .mul(x)
          .mul(3 * (attrs.scale as number))
          .add(1),
      ),
    ];
  },
  lower: (a) => {
    const x = (a.inputs[0] as { buf: kernelBuf }).buf;
    const n = a.output.type.shape.reduce((p, d) => p * d, 1);
    return [
      kit.perThread(a.name, n, (kb, t) => {
        const v = kb.let('v', K.load(x, t));
        kit.storeOut(kb, a, t, K.add(K.mul(K.mul(K.f32(a.attrs.scale as number), v), K.mul(v, v)), v));
      }),
    ];
  },
};
type kernelBuf = Parameters<typeof K.load>[0];

registerOp(CUBE);

function rand(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

describe('a third-party op registered through the public API', () => {
  afterAll(() => closeDevice());

  it('is listed and runs on the GPU like its CPU reference (with a fused epilogue)', async () => {
    expect(registeredOps()).toContain(CUBE.name);
    const g = new GraphBuilder();
    const x = g.input('x', [3, 37], 'f32');
    const y = g.apply(CUBE.name, [x], { scale: 0.75 });
    const outputs = { y, z: y.mul(2).add(x) };
    const feeds = { x: rand(3 * 37, 7) };
    const dev = await getDevice();
    const { spec } = compile(g, { outputs, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev });
    const gpu = await session.run(feeds);
    session.destroy();
    const ref = interpret(g.graph, feeds, [y.id, outputs.z.id]);
    const want = feeds.x.map((v) => 0.75 * v ** 3 + v);
    expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(1); // not all zeros
    ref.forEach((r, k) => {
      const got = (gpu[k === 0 ? 'y' : 'z'] as { data: ArrayLike<number> }).data;
      expect(got.length).toBe(r.data.length);
      for (let i = 0; i < r.data.length; i++) {
        expect(Math.abs((got[i] as number) - (r.data[i] as number))).toBeLessThanOrEqual(
          1e-5 * Math.max(1, Math.abs(r.data[i] as number)),
        );
      }
    });
    for (let i = 0; i < want.length; i++) expect(ref[0]?.data[i]).toBeCloseTo(want[i] as number, 10);
  });

  it('differentiates through its gradient rule', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5], 'f32');
    const loss = g.apply(CUBE.name, [x], { scale: 2 }).sum([0]);
    const [dx] = grad(loss, [x]);
    const feeds = { x: rand(5, 3) };
    const [r] = interpret(g.graph, feeds, [(dx as Tensor).id]);
    feeds.x.forEach((v, i) => {
      expect(r?.data[i]).toBeCloseTo(6 * Math.fround(v) ** 2 + 1, 5);
    });
  });

  it('rejects bad inputs through its shape rule with a ShapeError naming the op', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4], 'i32');
    expect(() => g.apply(CUBE.name, [x], { scale: 1 })).toThrow(ShapeError);
    expect(() => g.apply(CUBE.name, [x], { scale: 1 })).toThrow(/test_plugin_scaled_cube: x must be f32, got i32/);
  });

  it('refuses a second op of the same name, an unknown kind and a missing lowering', () => {
    expect(() => registerOp(CUBE)).toThrow(WgflowError);
    expect(() => registerOp(CUBE)).toThrow(/registerOp\("test_plugin_scaled_cube"\): an op of this name is already/);
    const { lower: _lower, ...noLower } = CUBE;
    expect(() => registerOp({ ...noLower, name: 'test_plugin_nolower' })).toThrow(/kind 'opaque' needs 'lower'/);
    expect(() => registerOp({ ...CUBE, name: 'test_plugin_kind', kind: 'fancy' as OpDef['kind'] })).toThrow(
      /kind "fancy" is not one of/,
    );
    expect(() => registerOp({ ...CUBE, name: 'bad name' })).toThrow(/must be an identifier/);
    expect(registeredOps()).not.toContain('test_plugin_nolower');
  });
});
