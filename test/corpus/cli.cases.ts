/** Bad command lines and bad files given to the `wgflow` CLI. */
import type { CorpusCase } from './types.js';

export const cases: CorpusCase[] = [
  {
    id: 'cli/train-mode-bogus',
    area: 'cli',
    kind: 'cli',
    what: '`train --mode bogus` is rejected at parse time',
    expect: { error: 'cli', message: /--mode.*bogus/ },
    args: () => ['train', '--mode', 'bogus'],
  },
];
