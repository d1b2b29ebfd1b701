import { WgflowError } from '../runtime/errors.js';
import { fmtType, type TensorType } from './types.js';

/** Base class of every error wgflow throws on purpose (shared with the runtime). */
export { WgflowError };

/** A shape or dtype rule failed when an op was declared. Names the op, the inputs and the user's call site. */
export class ShapeError extends WgflowError {
  override name = 'ShapeError';
  constructor(
    readonly op: string,
    readonly detail: string,
    readonly inputs: readonly TensorType[],
    readonly site: string,
  ) {
    super(`${op}: ${detail}; inputs ${inputs.map(fmtType).join(', ') || '(none)'}${site ? ` at ${site}` : ''}`);
  }
}

/** Thrown by shape rules; the builder turns it into a ShapeError with the call site attached. */
export class RuleError extends Error {}

/** Rejects an op's inputs or attributes from its shape rule (`infer`): the builder throws a ShapeError naming the op. */
export function fail(detail: string): never {
  throw new RuleError(detail);
}
