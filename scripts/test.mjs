#!/usr/bin/env node
// `npm test`: runs the vitest suite with the default reporter on the terminal and the JSON
// reporter into test-results/vitest.json, then prints one closing line of the form
//   N passed, N failed[, N skipped]
// computed from that JSON. Exits non-zero when a test (or a whole test file) failed, when vitest
// itself failed, or when no test ran at all. Extra arguments go to vitest, e.g.
//   npm test -- test/ops.test.ts -t softmax
// .ci/run uses this same script, so the README's command and CI's command are one.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'test-results');
const jsonFile = join(outDir, 'vitest.json');
const summaryFile = join(outDir, 'summary.txt');
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');

if (!existsSync(vitest)) {
  console.error('test: vitest is not installed; run `npm ci` first');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
rmSync(jsonFile, { force: true });
rmSync(summaryFile, { force: true });

const args = [
  vitest,
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${jsonFile}`,
  ...process.argv.slice(2),
];
const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
const exitCode = run.status ?? 1;
if (run.signal) console.error(`test: vitest was killed by ${run.signal}`);

let report;
try {
  report = JSON.parse(readFileSync(jsonFile, 'utf8'));
} catch {
  report = undefined;
}

let passed = 0;
let failed = 0;
let skipped = 0;
const notes = [];
if (report) {
  passed = report.numPassedTests ?? 0;
  failed = report.numFailedTests ?? 0;
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A file that failed outside any test (import error, failing beforeAll/afterAll) has no
  // failed assertion of its own: count it as one failure so the line never hides it.
  for (const file of report.testResults ?? []) {
    const anyFailed = (file.assertionResults ?? []).some((t) => t.status === 'failed');
    if (file.status === 'failed' && !anyFailed) {
      failed += 1;
      notes.push(`test: ${relative(root, file.name)} failed outside any test: ${String(file.message).split('\n')[0]}`);
    }
  }
} else {
  notes.push(`test: no JSON report was written (${jsonFile})`);
}
if (exitCode !== 0 && failed === 0 && passed + skipped > 0) {
  // e.g. an unhandled error or rejection between tests, which the JSON report does not record.
  failed = 1;
  notes.push(`test: vitest exited with code ${exitCode} without a failing test in its report; counted as 1 failed`);
}
if (passed + failed === 0) notes.push('test: no test ran');

const summary = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
writeFileSync(summaryFile, `${summary}\n`);
for (const note of notes) console.error(note);
console.log(summary);
process.exitCode = failed > 0 || passed + failed === 0 || exitCode !== 0 ? 1 : 0;
