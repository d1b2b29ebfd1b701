/**
 * The op table. Each op family in ops/ registers its definitions here: shape rule, CPU reference,
 * gradient rule and kernel side by side. The compiler only ever looks ops up by name.
 */
import { WgflowError } from '../runtime/errors.js';
import type { Attrs, Node } from './ir.js';
import type { BufRef, Expr, Kernel, Scalar } from './kernel/ast.js';
import type { DeviceLimits } from './limits.js';
import type { Tensor } from './tensor.js';
import type { TargetName, TuningTables } from './tuning.js';
import type { DType, TensorType } from './types.js';

/** A float64 host tensor used by CPU references and the interpreter (integers stored exactly). */
export interface RefTensor {
  readonly data: Float64Array;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/**
 * How the fuser treats an op (TVM's op patterns):
 * - source: input / param / state / const, no kernel;
 * - elementwise: one output element from the same-index (broadcast) elements of its inputs; fuses;
 * - reduce: generic reduction over `attrs.axes`; absorbs an elementwise prologue and epilogue;
 * - view: reinterprets its input's buffer (reshape, stop_gradient); no kernel;
 * - gemm: tiled matmul/conv that absorbs an elementwise epilogue;
 * - opaque: its own kernels; ends fusion.
 */
export type OpKind = 'source' | 'elementwise' | 'reduce' | 'view' | 'gemm' | 'opaque';

export interface CpuArgs {
  readonly inputs: readonly RefTensor[];
  readonly attrs: Attrs;
  /** The output's type, with every run-time size resolved (static). */
  readonly out: TensorType;
  readonly node: Node;
  /** Values of the run-time size symbols of this evaluation (empty for static graphs). */
  readonly env: Readonly<Record<string, number>>;
}

export interface GradArgs {
  readonly node: Node;
  readonly attrs: Attrs;
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  /** Gradient of the loss with respect to this node's output. */
  readonly dy: Tensor;
}

export interface ExprArgs {
  readonly args: readonly Expr[];
  readonly attrs: Attrs;
  readonly inTypes: readonly TensorType[];
  readonly out: TensorType;
  /** Flat (row-major) index of the output element, u32. */
  readonly index: Expr;
}

export interface BufArg {
  readonly buf: BufRef;
  readonly type: TensorType;
}

export interface LowerArgs {
  readonly node: Node;
  readonly attrs: Attrs;
  readonly inputs: readonly BufArg[];
  readonly output: BufArg;
  readonly limits: DeviceLimits;
  /** The target the kernels are lowered for, and its tuning tables (compiler/tuning.ts). */
  readonly target: TargetName;
  readonly tuning: Partial<TuningTables>;
  /** Unique prefix for kernel names, e.g. "k12_conv2d". */
  readonly name: string;
  /** True when elementwise consumers were fused into this op's store. */
  readonly hasEpilogue: boolean;
  /**
   * The value to store for an output element, after the fused epilogue (identity when none).
   * `coords` is the output multi-index (u32 each); `flat` its row-major index when the kernel has it.
   */
  epilogue(value: Expr, coords: readonly Expr[], flat?: Expr): Expr;
  /** A temporary buffer that lives for this op's kernels only. */
  scratch(t: Exclude<Scalar, 'bool'>, numel: number): BufRef;
}

export interface OpDef {
  readonly name: string;
  readonly kind: OpKind;
  /** Shape and dtype rule; call fail("...") from errors.ts to reject. */
  infer(inputs: readonly TensorType[], attrs: Attrs): TensorType;
  /**
   * True when every rule of the op (infer, cpu, grad, expr/lower) handles run-time sizes (`dims` of
   * TensorType, compiler/dims.ts). The builder refuses run-time-sized inputs to other ops.
   */
  readonly dynamic?: boolean;
  /** Float64 reference; returns the output's elements in row-major order. */
  cpu(a: CpuArgs): Float64Array;
  /** Reverse-mode rule: one gradient per input (null where none flows). Absent: not differentiable. */
  grad?(a: GradArgs): readonly (Tensor | null)[];
  /** kind 'elementwise': the output element as an expression of the input elements. */
  expr?(a: ExprArgs): Expr;
  /** kind 'reduce': how elements combine. */
  readonly reduce?: 'sum' | 'max' | 'min';
  /** kind 'gemm' | 'opaque': the kernels that compute the op, in order. */
  lower?(a: LowerArgs): Kernel[];
}

const table = new Map<string, OpDef>();

const KINDS: readonly OpKind[] = ['source', 'elementwise', 'reduce', 'view', 'gemm', 'opaque'];
/** The rule each kind needs besides infer and cpu. */
const NEEDS: Partial<Record<OpKind, 'expr' | 'reduce' | 'lower'>> = {
  elementwise: 'expr',
  reduce: 'reduce',
  gemm: 'lower',
  opaque: 'lower',
};

/**
 * Adds an op to the op table (the built-in op families and third-party ops alike). Throws a
 * WgflowError for a name already taken, an unknown kind or a rule the kind needs but the def lacks.
 */
export function registerOp(def: OpDef): OpDef {
  const where = `registerOp(${JSON.stringify(def.name)})`;
  if (typeof def.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(def.name))
    throw new WgflowError(`${where}: the name must be an identifier (letters, digits, _; not a digit first)`);
  if (table.has(def.name)) throw new WgflowError(`${where}: an op of this name is already registered`);
  if (!KINDS.includes(def.kind))
    throw new WgflowError(`${where}: kind ${JSON.stringify(def.kind)} is not one of ${KINDS.join(', ')}`);
  if (typeof def.infer !== 'function' || typeof def.cpu !== 'function')
    throw new WgflowError(`${where}: an op needs infer (its shape rule) and cpu (its reference) functions`);
  const need = NEEDS[def.kind];
  if (need && def[need] === undefined) throw new WgflowError(`${where}: an op of kind '${def.kind}' needs '${need}'`);
  table.set(def.name, def);
  return def;
}

export function getOp(name: string): OpDef {
  const d = table.get(name);
  if (!d) throw new Error(`op '${name}' is not registered (import 'wgflow' or its ops/ index to load the op table)`);
  return d;
}

export function hasOp(name: string): boolean {
  return table.has(name);
}

export function registeredOps(): string[] {
  return [...table.keys()].sort();
}
