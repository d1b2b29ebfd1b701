/** Bad inputs to the eager detection ops (`ops.*`). */
import { ops } from '../../index.js';
import type { CorpusCase } from './types.js';

export const cases: CorpusCase[] = [
  {
    id: 'eager/nms-plain-arrays',
    area: 'eager',
    kind: 'library',
    what: 'ops.nms with plain nested arrays (valid, must work)',
    expect: { ok: true },
    run: () => ops.nms([[0, 0, 1, 1]], [0.5], 0.5),
  },
  {
    id: 'eager/nms-scores-undefined',
    area: 'eager',
    kind: 'library',
    what: 'ops.nms(boxes, undefined, 0.5)',
    expect: { error: 'WgflowError', message: /nms.*scores/i },
    run: () => ops.nms([[0, 0, 1, 1]], undefined as unknown as number[], 0.5),
  },
];
