/** The runtime's error type (the runtime imports nothing from the compiler). */
export class WgflowError extends Error {
  override name = 'WgflowError';
}
