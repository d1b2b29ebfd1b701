/**
 * Small metadata over a communicator as JSON: a configuration chosen on rank 0, per-rank results
 * gathered at the root. Both are collective: every rank calls them in the same order.
 */
import { WgflowError } from '../errors.js';
import type { Communicator } from './communicator.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(op: string, value: unknown): Uint8Array {
  const text = JSON.stringify(value);
  if (text === undefined) throw new WgflowError(`distributed: ${op}: the value is not JSON (${typeof value})`);
  return encoder.encode(text);
}

/**
 * Root's `value` on every rank, root included, as the JSON text makes it (what JSON cannot hold, such as
 * undefined members, typed arrays or Maps, does not arrive anywhere). What the other ranks pass is
 * ignored: pass undefined. A value root cannot encode is an error on every rank.
 */
export function bcastJson<T>(comm: Communicator, value: T | undefined, root = 0): T {
  let bytes: Uint8Array | undefined;
  let failure: unknown;
  if (comm.rank === root) {
    try {
      bytes = encode('bcastJson', value);
    } catch (e) {
      failure = e;
    }
  }
  // The length, or -1 when root could not encode (so that no rank waits for bytes that never come).
  const length = Float64Array.of(comm.rank === root ? (bytes?.length ?? -1) : 0);
  comm.bcast(length, root);
  const n = length[0] ?? -1;
  if (n < 0) {
    if (failure) throw failure;
    throw new WgflowError(`distributed: bcastJson: rank ${root} (the root) could not encode its value as JSON`);
  }
  const buf = bytes ?? new Uint8Array(n);
  comm.bcast(buf, root);
  return JSON.parse(decoder.decode(buf)) as T;
}

/** Every rank's `value` at `root`, in rank order (root's own value included, as JSON too); undefined elsewhere. */
export function gatherJson<T>(comm: Communicator, value: T, root = 0): T[] | undefined {
  const parts = comm.gatherv(encode('gatherJson', value), root);
  return parts?.map((p) => JSON.parse(decoder.decode(p)) as T);
}
