/**
 * The outputs a training run writes after its steps (the loss curve): when the run itself failed, its
 * error stays the one reported, and a failure of these later writes is only a note after it (e.g. in a
 * read-only folder, the refused checkpoint is what the user sees, not the EPERM of loss.png). After a
 * successful run, a failed write is the error.
 */
import { WgflowError } from '../compiler/errors.js';

/** A run's outcome: undefined when it succeeded. */
export type RunFailure = { readonly error: unknown } | undefined;

/**
 * Runs `write` (which writes `path`) after a run that ended with `failure`. Returns the path when it was
 * written. Throws the write's error (as a WgflowError naming the file) only when the run succeeded.
 */
export async function writeAfterRun(
  failure: RunFailure,
  what: string,
  path: string,
  write: () => Promise<void>,
  log: (line: string) => void,
): Promise<string | null> {
  try {
    await write();
    return path;
  } catch (e) {
    const why = `cannot write the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    if (!failure) throw new WgflowError(why, { cause: e });
    log(`note: ${why} (after the error above)`);
    return null;
  }
}
