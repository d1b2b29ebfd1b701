/**
 * size_value: a run-time size (compiler/dims.ts) as a scalar tensor, e.g. the element count a mean
 * divides by when some axis is only known at run time. Elementwise with no inputs: it fuses into its
 * consumer as a read of the kernel's size table.
 */

import { dimEval, SymDim } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { fmtValue } from '../compiler/ir.js';
import * as K from '../compiler/kernel/build.js';
import { registerOp } from '../compiler/registry.js';
import { DTYPES, type DType } from '../compiler/types.js';

registerOp({
  name: 'size_value',
  kind: 'elementwise',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 0) fail(`takes no inputs, got ${inputs.length}`);
    if (!(attrs.dim instanceof SymDim)) fail(`attribute dim must be a run-time size, got ${fmtValue(attrs.dim)}`);
    const dt = attrs.dtype as DType;
    if (!DTYPES.includes(dt)) fail(`unknown dtype ${fmtValue(attrs.dtype)}`);
    return { shape: [], dtype: dt };
  },
  cpu: ({ attrs, env }) => Float64Array.of(dimEval(attrs.dim as SymDim, env)),
  expr: ({ attrs, out }) => K.cast(out.dtype, K.size(attrs.dim as SymDim)),
});
