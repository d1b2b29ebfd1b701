/**
 * The 0/1 flags of detection annotations (VOC `difficult`, COCO `iscrowd`): the files store 0 and 1,
 * code often passes booleans, and both mean the same here. Anything else (2, '1', NaN, null) is an
 * error, not a silent "false".
 */
import { WgflowError } from '../runtime/errors.js';

/** The flag as a boolean: 0/false/undefined → false, 1/true → true; throws on anything else. */
export function flagValue(v: unknown, where: string, name: string): boolean {
  if (v === undefined || v === false || v === 0) return false;
  if (v === true || v === 1) return true;
  throw new WgflowError(`${where}: ${name} must be 0, 1, true or false, got ${JSON.stringify(v) ?? String(v)}`);
}
