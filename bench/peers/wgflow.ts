/** wgflow's side of a peer workload: a compiled session and a runner around it. */
import {
  compile,
  type Feed,
  type GraphBuilder,
  getDevice,
  limitsFrom,
  Session,
  type Tensor,
  type Update,
} from '../../index.js';
import type { Outputs, Runner } from './types.js';

export interface WgflowProgram {
  readonly session: Session;
  readonly runner: Runner;
}

/**
 * Compiles `outputs` (and `updates`, for training) of `g` and wraps the session. A timed run is
 * `session.run(feeds, { outputs: timedOutputs })`: inputs uploaded, every dispatch, wait for the GPU,
 * and the `timedOutputs` read back (none by default). `outputs()` reads every output.
 */
export async function wgflowProgram(
  g: GraphBuilder,
  outputs: Record<string, Tensor>,
  feeds: () => Readonly<Record<string, Feed>>,
  opts: {
    name: string;
    timedOutputs?: readonly string[];
    updates?: Update[];
    seed?: number;
  },
): Promise<WgflowProgram> {
  const dev = await getDevice();
  const { spec } = compile(g, {
    outputs,
    limits: limitsFrom(dev.limits),
    name: opts.name,
    ...(opts.updates ? { updates: opts.updates } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  const session = await Session.create(spec, { gpu: dev });
  const timed = opts.timedOutputs ?? [];
  return {
    session,
    runner: {
      run: async () => {
        await session.run(feeds(), { outputs: timed });
      },
      outputs: async () => {
        const r = await session.run(feeds());
        const o: Outputs = {};
        for (const [k, v] of Object.entries(r)) o[k] = v.data;
        return o;
      },
      dispose: () => session.destroy(),
    },
  };
}
