/** Source nodes: inputs, parameters, persistent state and constants. No kernels; the executor owns their buffers. */
import { fail } from '../compiler/errors.js';
import { registerOp } from '../compiler/registry.js';
import { numel } from '../compiler/types.js';

for (const name of ['input', 'param', 'state'] as const) {
  registerOp({
    name,
    kind: 'source',
    infer: () => fail(`${name} nodes are made by GraphBuilder.${name}()`),
    cpu: ({ node }) => fail(`internal: the interpreter feeds ${name} "${node.name}" itself`),
  });
}

registerOp({
  name: 'const',
  kind: 'source',
  infer: () => fail('constants are made by GraphBuilder.constant()'),
  cpu: ({ attrs, out }) => {
    const n = numel(out.shape);
    if (typeof attrs.value === 'number') return new Float64Array(n).fill(attrs.value);
    return Float64Array.from(attrs.data as number[]);
  },
});
