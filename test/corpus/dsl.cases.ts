/** Bad inputs to the DSL (GraphBuilder declarations) and to compile(): all fail before any GPU work. */
import { compile, GraphBuilder, init, type Tensor } from '../../index.js';
import type { CorpusCase } from './types.js';

type Expect = CorpusCase['expect'];
const shape = (msg: RegExp): Expect => ({ error: 'ShapeError', message: msg });
const wg = (msg: RegExp): Expect => ({ error: 'WgflowError', message: msg });

/** A library case of the DSL area. */
const dsl = (id: string, what: string, expect: Expect, run: () => unknown): CorpusCase => ({
  id: `dsl/${id}`,
  area: 'dsl',
  kind: 'library',
  what,
  expect,
  run,
});

/** Casts a hostile value to the parameter type it is passed as. */
const as = <T>(v: unknown): T => v as T;

/** A builder with one input x f32[2,3] (the valid base of most cases). */
function base(): { g: GraphBuilder; x: Tensor } {
  const g = new GraphBuilder();
  return { g, x: g.input('x', [2, 3]) };
}

export const cases: CorpusCase[] = [
  // ---- dtypes
  dsl('input-f64', "g.input('x', [4], 'f64')", shape(/input.*"x".*dtype "f64" is not supported.*f32, i32, u32/), () =>
    new GraphBuilder().input('x', [4], as('f64')),
  ),
  dsl('input-float32-name', "dtype 'float32' (the numpy name)", shape(/dtype "float32" is not supported/), () =>
    new GraphBuilder().input('x', [4], as('float32')),
  ),
  dsl('input-dtype-number', 'dtype given as a number', shape(/dtype 32 is not supported/), () =>
    new GraphBuilder().input('x', [4], as(32)),
  ),
  dsl('input-dtype-null', 'dtype null', shape(/dtype null is not supported/), () =>
    new GraphBuilder().input('x', [4], as(null)),
  ),
  dsl('constant-f16', "g.constant(1, [], 'f16')", shape(/const.*dtype "f16" is not supported/), () =>
    new GraphBuilder().constant(1, [], as('f16')),
  ),
  dsl('cast-to-f64', "x.cast('f64')", shape(/cast.*f64/), () => base().x.cast(as('f64'))),
  dsl('input-f32-default', 'g.input without a dtype (valid: f32)', { ok: true }, () => {
    const t = new GraphBuilder().input('x', [4]);
    if (t.dtype !== 'f32') throw new Error(`dtype ${t.dtype}`);
  }),
  // ---- shapes
  dsl('shape-negative', 'g.input with shape [-1, 3]', shape(/"x" has a bad shape \[-1,3\]: axis 0 is -1/), () =>
    new GraphBuilder().input('x', [-1, 3]),
  ),
  dsl('shape-zero', 'g.input with shape [0, 3]', shape(/axis 0 is 0 \(dimensions must be positive integers/), () =>
    new GraphBuilder().input('x', [0, 3]),
  ),
  dsl('shape-nan', 'g.input with shape [NaN]', shape(/bad shape \[NaN\]: axis 0 is NaN/), () =>
    new GraphBuilder().input('x', [Number.NaN]),
  ),
  dsl('shape-infinity', 'g.input with shape [Infinity]', shape(/axis 0 is Infinity/), () =>
    new GraphBuilder().input('x', [Number.POSITIVE_INFINITY]),
  ),
  dsl('shape-fraction', 'g.input with shape [2.5]', shape(/axis 0 is 2\.5/), () =>
    new GraphBuilder().input('x', [2.5]),
  ),
  dsl('shape-string-dim', "g.input with shape ['4']", shape(/axis 0 is "4"/), () =>
    new GraphBuilder().input('x', as(['4'])),
  ),
  dsl('shape-huge-dim', 'g.input with a dimension of 2^60 (not a safe integer)', shape(/axis 1 is/), () =>
    new GraphBuilder().input('x', [1, 2 ** 60]),
  ),
  dsl('shape-not-array', 'g.input with shape 4 (a number, not a list)', shape(/shape must be an array.*got 4/), () =>
    new GraphBuilder().input('x', as(4)),
  ),
  dsl('shape-undefined', 'g.input without a shape', shape(/shape must be an array.*\(undefined\)/), () =>
    new GraphBuilder().input('x', as(undefined)),
  ),
  dsl('shape-nested', 'g.input with shape [[2, 3]]', shape(/axis 0 is \[2,3\]/), () =>
    new GraphBuilder().input('x', as([[2, 3]])),
  ),
  dsl('param-shape-negative', 'g.param with shape [3, -3]', shape(/param.*"w" has a bad shape.*axis 1 is -3/), () =>
    new GraphBuilder().param('w', [3, -3]),
  ),
  dsl('state-shape-nan', 'g.state with shape [NaN]', shape(/state.*axis 0 is NaN/), () =>
    new GraphBuilder().state('m', [Number.NaN]),
  ),
  dsl('too-many-elements', 'an input of 2^33 elements is declared, compile rejects it', wg(/2\^32/), () => {
    const g = new GraphBuilder();
    const x = g.input('x', [65536, 65536, 2]);
    return compile(g, { outputs: { y: x.mul(2) } });
  }),
  dsl('scalar-input', 'g.input with shape [] (valid: a scalar)', { ok: true }, () =>
    compile(new GraphBuilder().input('x', []).builder, {}),
  ),
  // ---- names
  dsl('name-empty', "g.input('', [4])", shape(/name must be a non-empty string, got ""/), () =>
    new GraphBuilder().input('', [4]),
  ),
  dsl('name-blank', "g.input('  ', [4])", shape(/name must be a non-empty string/), () =>
    new GraphBuilder().input('  ', [4]),
  ),
  dsl('name-number', 'g.input(7, [4])', shape(/name must be a non-empty string, got 7/), () =>
    new GraphBuilder().input(as(7), [4]),
  ),
  dsl('name-undefined', 'g.param(undefined, [4])', shape(/param: the name must be a non-empty string/), () =>
    new GraphBuilder().param(as(undefined), [4]),
  ),
  dsl('name-duplicate-input', 'two inputs named x', shape(/the name "x" is already used/), () => {
    const g = new GraphBuilder();
    g.input('x', [4]);
    g.input('x', [4]);
  }),
  dsl('name-duplicate-param-input', 'a param named like an input', shape(/param.*the name "x" is already used/), () => {
    const g = new GraphBuilder();
    g.input('x', [4]);
    g.param('x', [4]);
  }),
  dsl('dim-duplicate', 'g.dim declared twice', shape(/size symbol H is already declared/), () => {
    const g = new GraphBuilder();
    g.dim('H', { max: 8 });
    g.dim('H', { max: 8 });
  }),
  dsl('dim-max-nan', "g.dim('H', { max: NaN })", shape(/dim/), () => new GraphBuilder().dim('H', { max: Number.NaN })),
  dsl('dim-no-range', "g.dim('H') without a range", shape(/expected a range \{ max, min\? \}/), () =>
    new GraphBuilder().dim('H', as(undefined)),
  ),
  dsl('dim-other-builder', "a size symbol of another builder's dim()", shape(/size symbol H was not declared/), () => {
    const h = new GraphBuilder().dim('H', { max: 8 });
    new GraphBuilder().input('x', [h]);
  }),
  dsl('param-sym-dim', 'a param with a run-time size', shape(/param.*bad shape/), () => {
    const g = new GraphBuilder();
    g.param('w', as([g.dim('H', { max: 8 })]));
  }),
  // ---- initializers and constants
  dsl('init-normal-nan', 'init.normal(NaN)', shape(/"w": bad initializer.*std must be a finite number/), () =>
    new GraphBuilder().param('w', [4], init.normal(Number.NaN)),
  ),
  dsl('init-normal-negative', 'init.normal(-1)', shape(/std must be ≥ 0/), () =>
    new GraphBuilder().param('w', [4], init.normal(-1)),
  ),
  dsl('init-uniform-reversed', 'init.uniform(1, 0)', shape(/low must be ≤ high/), () =>
    new GraphBuilder().param('w', [4], init.uniform(1, 0)),
  ),
  dsl('init-uniform-infinite', 'init.uniform(0, Infinity)', shape(/high must be a finite number/), () =>
    new GraphBuilder().param('w', [4], init.uniform(0, Number.POSITIVE_INFINITY)),
  ),
  dsl('init-constant-nan', 'state with init.constant(NaN)', shape(/state.*value must be a finite number/), () =>
    new GraphBuilder().state('m', [4], init.constant(Number.NaN)),
  ),
  dsl('init-unknown-kind', "an initializer { kind: 'orthogonal' }", shape(/unknown kind "orthogonal"/), () =>
    new GraphBuilder().param('w', [4], as({ kind: 'orthogonal' })),
  ),
  dsl('init-string', "an initializer given as the string 'he'", shape(/bad initializer "he"/), () =>
    new GraphBuilder().param('w', [4], as('he')),
  ),
  dsl('constant-count', 'g.constant([1, 2, 3], [2, 2])', shape(/3 values do not fill shape \[2,2\]/), () =>
    new GraphBuilder().constant([1, 2, 3], [2, 2]),
  ),
  dsl('constant-string-values', "g.constant(['1', '2'], [2])", shape(/value 0 is "1", not a number/), () =>
    new GraphBuilder().constant(as(['1', '2']), [2]),
  ),
  dsl('constant-i32-fraction', "g.constant(1.5, [], 'i32')", shape(/value 0 is 1\.5, not a i32/), () =>
    new GraphBuilder().constant(1.5, [], 'i32'),
  ),
  dsl('constant-u32-negative', "g.constant(-1, [], 'u32')", shape(/value 0 is -1, not a u32/), () =>
    new GraphBuilder().constant(-1, [], 'u32'),
  ),
  dsl('constant-i32-overflow', "g.constant(2^31, [], 'i32')", shape(/value 0 is 2147483648, not a i32/), () =>
    new GraphBuilder().constant(2 ** 31, [], 'i32'),
  ),
  dsl('constant-i32-nan', 'an i32 tensor plus NaN', shape(/value 0 is NaN, not a i32/), () => {
    const g = new GraphBuilder();
    g.input('k', [4], 'i32').add(Number.NaN);
  }),
  dsl('constant-shape-nan', 'g.constant(1, [NaN])', shape(/const: bad shape \[NaN\]/), () =>
    new GraphBuilder().constant(1, [Number.NaN]),
  ),
  dsl('constant-value-object', 'g.constant({})', shape(/value must be a number or an array of numbers/), () =>
    new GraphBuilder().constant(as({})),
  ),
  dsl('constant-nan-f32', 'an f32 tensor plus NaN (valid: NaN is f32 data)', { ok: true }, () =>
    base().x.add(Number.NaN),
  ),
  // ---- node ownership and op inputs
  dsl(
    'other-builder-apply',
    'adding tensors of two GraphBuilders',
    shape(/add: input 1 \(%0: f32\[2,3\]\) belongs to another GraphBuilder/),
    () => {
      const a = base().x;
      const b = base().x;
      a.add(b);
    },
  ),
  dsl(
    'other-builder-output',
    'compile(g2, { outputs: { y: tensorOfG1 } })',
    wg(/compile: output "y" \(%\d+: f32\[2,3\]\) belongs to another GraphBuilder/),
    () => {
      const a = base();
      const y = a.x.mul(2);
      const g2 = new GraphBuilder();
      g2.input('x', [2, 3]);
      return compile(g2, { outputs: { y } });
    },
  ),
  dsl(
    'other-builder-update',
    'an update whose target belongs to another builder',
    wg(/the target of update 0.*another GraphBuilder/),
    () => {
      const g1 = new GraphBuilder();
      const w = g1.param('w', [3]);
      const g2 = new GraphBuilder();
      const v = g2.input('v', [3]);
      return compile(g2, { updates: [{ target: w, value: v }] });
    },
  ),
  dsl('output-number', 'compile(g, { outputs: { y: 3 } })', wg(/compile: output "y" is 3, not a Tensor/), () =>
    compile(base().g, { outputs: { y: as(3) } }),
  ),
  dsl(
    'output-undefined',
    'compile(g, { outputs: { y: undefined } })',
    wg(/output "y" is \(undefined\), not a Tensor/),
    () => compile(base().g, { outputs: { y: as(undefined) } }),
  ),
  dsl(
    'output-array',
    'compile(g, { outputs: [x] }) (a list, not named)',
    wg(/outputs must be an object of named tensors/),
    () => {
      const { g, x } = base();
      return compile(g, { outputs: as([x]) });
    },
  ),
  dsl(
    'output-tensor',
    'compile(g, { outputs: x }) (a bare tensor)',
    wg(/outputs must be an object.*got a Tensor/),
    () => {
      const { g, x } = base();
      return compile(g, { outputs: as(x) });
    },
  ),
  dsl(
    'output-string',
    "compile(g, { outputs: { y: 'x' } }) (a name, not a tensor)",
    wg(/output "y" is "x", not a Tensor/),
    () => compile(base().g, { outputs: { y: as('x') } }),
  ),
  dsl('output-empty-name', "compile(g, { outputs: { '': x } })", wg(/an output has an empty name/), () => {
    const { g, x } = base();
    return compile(g, { outputs: { '': x } });
  }),
  dsl(
    'updates-not-array',
    'compile(g, { updates: { target, value } }) (not a list)',
    wg(/updates must be an array/),
    () => {
      const g = new GraphBuilder();
      const w = g.param('w', [3]);
      return compile(g, { updates: as({ target: w, value: w.mul(2) }) });
    },
  ),
  dsl('update-null', 'compile(g, { updates: [null] })', wg(/update 0 is null, not \{ target, value \}/), () =>
    compile(base().g, { updates: as([null]) }),
  ),
  dsl(
    'update-of-input',
    'an update whose target is an input',
    wg(/update target %0 is a input, not a param or state/),
    () => {
      const { g, x } = base();
      return compile(g, { updates: [{ target: x, value: x.mul(2) }] });
    },
  ),
  dsl(
    'update-type-mismatch',
    'a param f32[3] updated with f32[4]',
    wg(/compile: update of "w" f32\[3\] with f32\[4\]/),
    () => {
      const g = new GraphBuilder();
      const w = g.param('w', [3]);
      return compile(g, { updates: [{ target: w, value: g.input('v', [4]) }] });
    },
  ),
  dsl('compile-not-builder', 'compile({}) (not a GraphBuilder)', wg(/compile: expected a GraphBuilder/), () =>
    compile(as({})),
  ),
  dsl('compile-options-null', 'compile(g, null)', wg(/compile: the options must be an object, got null/), () =>
    compile(base().g, as(null)),
  ),
  dsl('compile-seed-nan', 'compile(g, { seed: NaN })', wg(/seed must be an integer, got NaN/), () =>
    compile(base().g, { seed: Number.NaN }),
  ),
  dsl('apply-non-tensor', "g.apply('add', [x, 2])", shape(/add: input 1 is 2, not a Tensor/), () => {
    const { g, x } = base();
    g.apply('add', [x, as(2)]);
  }),
  dsl('apply-unknown-op', "g.apply('conv3d', [x])", shape(/op 'conv3d' is not registered/), () => {
    const { g, x } = base();
    g.apply('conv3d', [x]);
  }),
  dsl('apply-inputs-not-array', "g.apply('relu', x)", shape(/inputs must be an array of tensors/), () => {
    const { g, x } = base();
    g.apply('relu', as(x));
  }),
  dsl('add-string', "x.add('1')", shape(/add: input 1 is "1", not a Tensor/), () => base().x.add(as('1'))),
  dsl('matmul-undefined', 'x.matmul(undefined)', shape(/matmul: input 1 is \(undefined\)/), () =>
    base().x.matmul(as(undefined)),
  ),
  dsl('gather-f32-indices', 'gather with f32 indices', shape(/gather: indices must be i32/), () => {
    const { g, x } = base();
    x.gather(g.input('i', [2]));
  }),
  dsl(
    'tensor-missing-id',
    'g.tensor(99) in a builder of 1 node',
    shape(/tensor: no node %99 in this GraphBuilder \(it has 1 nodes\)/),
    () => base().g.tensor(99),
  ),
  dsl('tensor-id-nan', 'g.tensor(NaN)', shape(/no node %NaN/), () => base().g.tensor(Number.NaN)),
  // ---- attributes: NaN and Infinity named as themselves, not as null
  dsl('attr-nan-axis', 'x.softmax(NaN)', shape(/softmax: attribute axis must be a number, not NaN/), () =>
    base().x.softmax(Number.NaN),
  ),
  dsl('attr-nan-sum-axes', 'x.sum(NaN)', shape(/attribute axes\[0\] must be a number, not NaN/), () =>
    base().x.sum(Number.NaN),
  ),
  dsl('attr-nan-reshape', 'x.reshape([NaN, 3])', shape(/reshape: attribute shape\[0\] must be a number, not NaN/), () =>
    base().x.reshape([Number.NaN, 3]),
  ),
  dsl(
    'attr-nan-slice',
    'x.slice([0, 0], [NaN, 3])',
    shape(/slice: attribute ends\[0\] must be a number, not NaN/),
    () => base().x.slice([0, 0], [Number.NaN, 3]),
  ),
  dsl(
    'attr-nan-pad',
    'x.pad with a NaN pad width',
    shape(/pad: attribute pads\[1\]\[0\] must be a number, not NaN/),
    () =>
      base().x.pad([
        [0, 0],
        [Number.NaN, 1],
      ]),
  ),
  dsl('attr-nan-dropout', 'x.dropout(NaN, 1)', shape(/dropout: attribute p must be a number, not NaN/), () =>
    base().x.dropout(Number.NaN, 1),
  ),
  dsl('attr-infinity-axis', 'x.softmax(Infinity) names Infinity', shape(/softmax: .*Infinity/), () =>
    base().x.softmax(Number.POSITIVE_INFINITY),
  ),
  dsl(
    'attr-infinity-stride',
    'conv2d with stride Infinity names Infinity, not null',
    shape(/conv2d: attribute stride must be a pair of integers ≥ 1, got \[Infinity,Infinity\]/),
    () => {
      const g = new GraphBuilder();
      const x = g.input('x', [1, 1, 4, 4]);
      x.conv2d(g.param('w', [1, 1, 3, 3]), { stride: Number.POSITIVE_INFINITY });
    },
  ),
  dsl(
    'attr-infinity-pool',
    'maxPool2d with kernel -Infinity',
    shape(/max_pool2d: attribute kernel must be two integers ≥ 1, got \[-Infinity,-Infinity\]/),
    () => {
      const g = new GraphBuilder();
      g.input('x', [1, 1, 4, 4]).maxPool2d({ kernel: Number.NEGATIVE_INFINITY });
    },
  ),
  dsl('attr-bigint', "g.apply('sum', [x], { axes: [1n] })", shape(/attribute axes\[0\] is a bigint/), () => {
    const { g, x } = base();
    g.apply('sum', [x], { axes: as([1n]), keepDims: false });
  }),
  dsl('attr-not-object', "g.apply('relu', [x], 5)", shape(/attributes must be an object, got 5/), () => {
    const { g, x } = base();
    g.apply('relu', [x], as(5));
  }),
  dsl('pad-neg-infinity-value', 'x.pad with value -Infinity (valid: Infinity is data)', { ok: true }, () =>
    base().x.pad(
      [
        [0, 0],
        [1, 1],
      ],
      Number.NEGATIVE_INFINITY,
    ),
  ),
  dsl('graph-print-nan', 'the graph print shows NaN/Infinity, not null', { ok: true }, () => {
    const { g, x } = base();
    x.pad(
      [
        [0, 0],
        [1, 1],
      ],
      Number.NEGATIVE_INFINITY,
    );
    const text = g.graph.print();
    if (!text.includes('value:-Infinity')) throw new Error(`the print lost -Infinity:\n${text}`);
  }),
  dsl('transpose-bad-perm', 'x.transpose([0, 0])', shape(/perm \[0,0\] is not a permutation/), () =>
    base().x.transpose([0, 0]),
  ),
  dsl('reshape-wrong-count', 'x.reshape([4, 2]) of f32[2,3]', shape(/reshape/), () => base().x.reshape([4, 2])),
];
