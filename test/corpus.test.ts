/**
 * The bad-input corpus (test/corpus/*.cases.ts, issue 12): every case runs in a child process under its
 * time and memory limits and must end cleanly: the expected error class and message (or success where
 * the input is valid), no native crash, no hang, no raw stack trace, no "internal" error, and no
 * protected file changed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { STACK_LINE } from './cli-process.js';
import { type LoadedCase, loadCorpus, runCorpus } from './corpus/runner.js';
import type { CaseResult } from './corpus/types.js';

/** The corpus must stay at least this large (the issue's acceptance). */
const MIN_CASES = 250;

const corpus: LoadedCase[] = await loadCorpus();
const results = new Map<string, CaseResult>();

beforeAll(async () => {
  const rs = await runCorpus(corpus, 2);
  for (const r of rs) results.set(r.id, r);
}, 1_500_000);

afterAll(() => {
  const clean = [...results.values()].filter((r) => problems(corpus.find((c) => c.case.id === r.id)!, r).length === 0);
  const byArea = new Map<string, number>();
  for (const { case: c } of corpus) byArea.set(c.area, (byArea.get(c.area) ?? 0) + 1);
  console.log(
    `corpus: ${corpus.length} cases, ${clean.length} clean (${[...byArea].map(([a, n]) => `${a} ${n}`).join(', ')})`,
  );
});

const nonEmptyLines = (s: string | undefined) => (s ?? '').split('\n').filter((l) => l.trim() !== '');

/** Everything wrong with one case's result; empty when the case is clean. */
function problems(item: LoadedCase, r: CaseResult): string[] {
  const c = item.case;
  const out: string[] = [];
  if (r.outcome === 'timeout') out.push(`hung: killed after ${r.ms} ms`);
  if (r.outcome === 'memory') out.push(`memory: grew by ${r.rssGrowthMb.toFixed(0)} MiB, killed`);
  if (r.outcome === 'crash') out.push(`crashed: exit ${r.exitCode} signal ${r.signal} ${r.message ?? ''}`);
  if (r.changed.length) out.push(`files changed: ${r.changed.join(', ')}`);
  const exp = c.expect;
  if (c.kind === 'library') {
    if ('ok' in exp) {
      if (r.outcome === 'error') out.push(`expected success, threw ${r.errorName}: ${r.message}`);
    } else if (r.outcome === 'ok') out.push(`expected ${exp.error} /${exp.message.source}/, returned normally`);
    else if (r.outcome === 'error') {
      if (r.errorName !== exp.error) out.push(`expected ${exp.error}, got ${r.errorName}: ${r.message}`);
      if (!exp.message.test(r.message ?? ''))
        out.push(`message ${JSON.stringify(r.message)} !~ /${exp.message.source}/`);
      if (/\binternal\b/i.test(r.message ?? '')) out.push(`an internal error: ${r.message}`);
      if (STACK_LINE.test(r.message ?? '')) out.push('a stack trace inside the message');
    }
  } else {
    const errLines = nonEmptyLines(r.stderr);
    if (STACK_LINE.test(r.stderr ?? '') || STACK_LINE.test(r.stdout ?? '')) out.push(`a raw stack trace:\n${r.stderr}`);
    if ('ok' in exp) {
      const want = c.exitCode ?? 0;
      if (r.outcome !== 'timeout' && r.exitCode !== want)
        out.push(`expected exit ${want}, got ${r.exitCode}: ${r.stderr}`);
    } else if (r.outcome === 'ok' || r.outcome === 'error') {
      if (r.exitCode !== 1) out.push(`expected exit 1, got ${r.exitCode}: ${r.stderr}`);
      if (errLines.length !== 1) out.push(`expected one line on stderr, got ${errLines.length}:\n${r.stderr}`);
      const line = errLines.at(-1) ?? '';
      if (!line.startsWith('wgflow: ')) out.push(`stderr does not start with "wgflow: ": ${line}`);
      if (!exp.message.test(line)) out.push(`stderr ${JSON.stringify(line)} !~ /${exp.message.source}/`);
      if (/\binternal\b/i.test(line)) out.push(`an internal error: ${line}`);
    }
  }
  return out;
}

test(`the corpus holds at least ${MIN_CASES} cases`, () => {
  expect(corpus.length).toBeGreaterThanOrEqual(MIN_CASES);
});

describe.each([...new Set(corpus.map((c) => c.case.area))])('corpus: %s', (area) => {
  test.each(corpus.filter((c) => c.case.area === area).map((c) => [c.case.id, c] as const))('%s', (_id, item) => {
    const r = results.get(item.case.id);
    expect(r, 'the case did not run').toBeDefined();
    expect(
      problems(item, r as CaseResult),
      `${item.case.what} (${r?.ms} ms, +${r?.rssGrowthMb.toFixed(0)} MiB)`,
    ).toEqual([]);
  });
});
