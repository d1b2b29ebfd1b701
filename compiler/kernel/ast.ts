import type { Dim, SymDim } from '../dims.js';

/**
 * Target-neutral kernel description. Kernels are trees of these nodes; a renderer (WGSL now,
 * CUDA C later) turns them into source text. Nothing here knows a target's syntax.
 */
export type Scalar = 'f32' | 'i32' | 'u32' | 'bool';

/** A storage buffer a kernel reads or writes, by logical name. Access is inferred from stores. */
export interface BufRef {
  readonly name: string;
  readonly t: Exclude<Scalar, 'bool'>;
}

export type BinOp =
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | '<'
  | '<='
  | '>'
  | '>='
  | '=='
  | '!='
  | '&&'
  | '||'
  | '&'
  | '|'
  | '^'
  | '<<'
  | '>>';

export type CallFn =
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'abs'
  | 'min'
  | 'max'
  | 'pow'
  | 'tanh'
  | 'floor'
  | 'ceil'
  | 'sign'
  | 'fma'
  | 'clamp'
  | 'trunc'
  | 'sin'
  | 'cos'
  | 'isnan';

export type Builtin =
  /** workgroup id, folded to one linear number when the grid was folded into 2-D */
  | 'wg_linear'
  /** x/y/z of the workgroup id (unfolded grids only) */
  | 'wg_x'
  | 'wg_y'
  | 'wg_z'
  | 'lid_x'
  | 'lid_y'
  | 'lid_z'
  /** local_invocation_index */
  | 'lidx';

export type Expr =
  | { readonly k: 'lit'; readonly t: Scalar; readonly v: number }
  | { readonly k: 'var'; readonly t: Scalar; readonly name: string }
  | { readonly k: 'load'; readonly t: Scalar; readonly buf: BufRef; readonly idx: Expr }
  | { readonly k: 'sload'; readonly t: Scalar; readonly arr: string; readonly idx: Expr }
  | { readonly k: 'bin'; readonly t: Scalar; readonly op: BinOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'not'; readonly t: 'bool'; readonly a: Expr }
  | { readonly k: 'neg'; readonly t: Scalar; readonly a: Expr }
  | { readonly k: 'call'; readonly t: Scalar; readonly fn: CallFn; readonly args: readonly Expr[] }
  | { readonly k: 'select'; readonly t: Scalar; readonly c: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'cast'; readonly t: Scalar; readonly a: Expr }
  | { readonly k: 'bitcast'; readonly t: Scalar; readonly a: Expr }
  | { readonly k: 'builtin'; readonly t: 'u32'; readonly name: Builtin }
  /** A run-time size (u32), read from the program's size table; the binding pass gives it a slot. */
  | { readonly k: 'size'; readonly t: 'u32'; readonly dim: SymDim };

export type Stmt =
  | { readonly k: 'let'; readonly name: string; readonly t: Scalar; readonly init: Expr; readonly mut: boolean }
  | { readonly k: 'assign'; readonly name: string; readonly value: Expr }
  | { readonly k: 'store'; readonly buf: BufRef; readonly idx: Expr; readonly value: Expr }
  | { readonly k: 'sstore'; readonly arr: string; readonly idx: Expr; readonly value: Expr }
  | {
      readonly k: 'for';
      readonly v: string;
      readonly t: 'i32' | 'u32';
      readonly from: Expr;
      readonly to: Expr;
      readonly step: number;
      readonly body: readonly Stmt[];
    }
  | { readonly k: 'if'; readonly cond: Expr; readonly then: readonly Stmt[]; readonly else: readonly Stmt[] }
  | { readonly k: 'barrier' }
  | { readonly k: 'break' }
  | { readonly k: 'continue' }
  | { readonly k: 'return' };

/** Arrays in workgroup (shared) memory or in a thread's private memory. */
export interface ArrayDecl {
  readonly name: string;
  readonly t: Scalar;
  readonly size: number;
  readonly space: 'workgroup' | 'private';
}

export interface Kernel {
  readonly name: string;
  readonly workgroupSize: readonly [number, number, number];
  /**
   * Workgroups to launch. A 1-D count (`linear`) may be folded into 2-D by the lowering when it
   * exceeds the per-dimension limit; kernels then read `wg_linear` and must bounds-check. Counts may be
   * run-time sizes: the runtime evaluates them at dispatch (kernels bounds-check against the same sizes).
   */
  readonly grid: { readonly linear: Dim } | { readonly xyz: readonly [Dim, Dim, Dim] };
  readonly arrays: readonly ArrayDecl[];
  readonly body: readonly Stmt[];
}
