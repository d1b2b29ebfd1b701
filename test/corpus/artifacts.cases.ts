/** Tampered or broken artifact folders (manifest.json, kernels/, weights): refused when loaded, before any dispatch. */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeArtifact } from '../../compiler/artifact.js';
import {
  compile,
  GraphBuilder,
  loadArtifact,
  loadArtifactFromUrl,
  readArtifactManifest,
  WEBGPU_DEFAULT_LIMITS,
} from '../../index.js';
import type { CorpusCase } from './types.js';

type Json = Record<string, unknown> & { kernels: Record<string, unknown>[] };

/** A small artifact (y = relu(x·w) + 1) compiled for WebGPU's default limits into dir/a; no GPU needed. */
async function artifact(dir: string): Promise<string> {
  const g = new GraphBuilder();
  const x = g.input('x', [2, 8]);
  const w = g.param('w', [8, 4]);
  const y = x.matmul(w).relu().add(1);
  const c = compile(g, { outputs: { y }, limits: WEBGPU_DEFAULT_LIMITS, name: 'tiny' });
  const out = join(dir, 'a');
  await writeArtifact(out, { spec: c.spec, name: 'tiny', typed: false });
  return out;
}
const manifestPath = (a: string) => join(a, 'manifest.json');
const readManifest = (a: string) => JSON.parse(readFileSync(manifestPath(a), 'utf8')) as Json;
const writeManifest = (a: string, m: unknown) => writeFileSync(manifestPath(a), JSON.stringify(m));

/** A case that builds the artifact, edits its manifest, and reads it back (no GPU). */
const tamper = (
  id: string,
  what: string,
  edit: (m: Json) => unknown,
  message: RegExp,
  load: (dir: string) => unknown = readArtifactManifest,
): CorpusCase => ({
  id: `artifacts/${id}`,
  area: 'artifacts',
  kind: 'library',
  what: `manifest tampered: ${what}`,
  expect: { error: 'WgflowError', message },
  setup: async (ctx) => {
    const a = await artifact(ctx.dir);
    const m = readManifest(a);
    writeManifest(a, edit(m) ?? m);
  },
  run: (ctx) => load(join(ctx.dir, 'a')),
});
const k0 = (m: Json) => m.kernels[0] as Record<string, unknown>;

export const cases: CorpusCase[] = [
  tamper(
    'dispatch-65535-65535-64',
    'a dispatch of [65535, 65535, 64] (ran for hours)',
    (m) => {
      // the recorded (planned) grid limit raised too, so only the workgroup cap stands in the way
      (m.limits as Record<string, number>).maxComputeWorkgroupsPerDimension = 65535;
      k0(m).dispatch = [65535, 65535, 64];
    },
    /kernels\[0\].*dispatch \[65535, 65535, 64\] is \d+ workgroups, over the cap of 16777216/,
  ),
  tamper(
    'dispatch-over-dimension-limit',
    'a dispatch dimension of 70000 (over the planned largest grid dimension the manifest records)',
    (m) => {
      k0(m).dispatch = [70000, 1, 1];
    },
    /dispatch \[70000, 1, 1\] exceeds limits\.maxComputeWorkgroupsPerDimension \d+/,
  ),
  tamper(
    'dispatch-limit-raised',
    'limits.maxComputeWorkgroupsPerDimension raised to 2^31 to hide a huge grid',
    (m) => {
      (m.limits as Record<string, number>).maxComputeWorkgroupsPerDimension = 2 ** 31;
      k0(m).dispatch = [2 ** 30, 1, 1];
    },
    /over the cap of 16777216 per dispatch/,
  ),
  tamper(
    'dispatch-negative',
    'a dispatch of [-1, 1, 1]',
    (m) => {
      k0(m).dispatch = [-1, 1, 1];
    },
    /kernels\[0\] is not \{name, file, sha256, workgroupSize, dispatch/,
  ),
  tamper(
    'dispatch-two-dims',
    'a dispatch of two numbers',
    (m) => {
      k0(m).dispatch = [1, 1];
    },
    /kernels\[0\] is not/,
  ),
  tamper(
    'workgroup-too-large',
    'workgroupSize [1024, 1024, 1]',
    (m) => {
      k0(m).workgroupSize = [1024, 1024, 1];
    },
    /workgroupSize \[1024, 1024, 1\].*exceeds the workgroup limits/,
  ),
  tamper(
    'workgroup-zero',
    'workgroupSize [0, 1, 1]',
    (m) => {
      k0(m).workgroupSize = [0, 1, 1];
    },
    /workgroupSize \[0, 1, 1\] is empty/,
  ),
  tamper(
    'bindings-out-of-range',
    'a binding of buffer 999',
    (m) => {
      const b = k0(m).bindings as number[];
      b[0] = 999;
    },
    /kernels\[0\] is not.*bindings/,
  ),
  tamper(
    'bindings-writes-mismatch',
    'bindings and writes of different lengths',
    (m) => {
      (k0(m).writes as unknown[]).push(true);
    },
    /kernels\[0\] is not/,
  ),
  tamper(
    'bindings-over-limit',
    'more bindings than limits.maxStorageBuffersPerShaderStage',
    (m) => {
      const k = k0(m);
      const b = k.bindings as number[];
      k.bindings = Array.from({ length: 20 }, () => b[0]);
      k.writes = Array.from({ length: 20 }, () => false);
    },
    /20 bindings exceed limits\.maxStorageBuffersPerShaderStage/,
  ),
  tamper(
    'format-wrong',
    'format "not-wgflow"',
    (m) => {
      m.format = 'not-wgflow';
    },
    /not a wgflow artifact manifest/,
  ),
  tamper(
    'version-future',
    'version 99',
    (m) => {
      m.version = 99;
    },
    /version 99 is newer/,
  ),
  tamper(
    'steps-bad-kernel',
    'a step dispatching kernel 999',
    (m) => {
      (m.steps as unknown[]).push({ kind: 'dispatch', kernel: 999 });
    },
    /steps\[\d+\] is not a dispatch of a kernel/,
  ),
  tamper(
    'buffer-id-wrong',
    'buffers[0].id = 5',
    (m) => {
      (m.buffers as Record<string, unknown>[])[0]!.id = 5;
    },
    /buffers\[0\] is not \{id: 0/,
  ),
  tamper(
    'limits-missing',
    'no limits',
    (m) => {
      delete m.limits;
    },
    /"limits" is not an object/,
  ),
  tamper('manifest-list', 'the manifest is a JSON list', () => [1, 2, 3], /not a JSON object/),
  {
    id: 'artifacts/manifest-not-json',
    area: 'artifacts',
    kind: 'library',
    what: 'manifest.json holds no JSON',
    expect: { error: 'WgflowError', message: /manifest\.json: not valid JSON/ },
    setup: async (ctx) => {
      writeFileSync(manifestPath(await artifact(ctx.dir)), '{"format": "wgflow-artifact",');
    },
    run: (ctx) => readArtifactManifest(join(ctx.dir, 'a')),
  },
  {
    id: 'artifacts/manifest-fifo',
    area: 'artifacts',
    kind: 'library',
    what: 'manifest.json is a named pipe',
    expect: { error: 'WgflowError', message: /manifest\.json.*named pipe/ },
    timeoutMs: 10_000,
    setup: async (ctx) => {
      const a = await artifact(ctx.dir);
      rmSync(manifestPath(a));
      execFileSync('mkfifo', [manifestPath(a)]);
    },
    run: (ctx) => readArtifactManifest(join(ctx.dir, 'a')),
  },
  {
    id: 'artifacts/no-manifest',
    area: 'artifacts',
    kind: 'library',
    what: 'a folder without manifest.json',
    expect: { error: 'WgflowError', message: /no manifest\.json \(not an artifact directory/ },
    run: (ctx) => readArtifactManifest(ctx.dir),
  },
  {
    id: 'artifacts/dispatch-cap-raised',
    area: 'artifacts',
    kind: 'library',
    what: 'the dispatch cap is an option: a lower cap refuses the valid artifact (it is checked)',
    expect: { error: 'WgflowError', message: /over the cap of 0 per dispatch/ },
    setup: async (ctx) => {
      await artifact(ctx.dir);
    },
    run: (ctx) => loadArtifact(join(ctx.dir, 'a'), { maxDispatchWorkgroups: 0 }),
  },
  {
    id: 'artifacts/kernel-modified',
    area: 'artifacts',
    kind: 'library',
    what: 'a kernel file edited after compilation (hash mismatch)',
    expect: { error: 'WgflowError', message: /kernel file .* was modified or is corrupt: sha256/ },
    setup: async (ctx) => {
      const a = await artifact(ctx.dir);
      const f = join(a, k0(readManifest(a)).file as string);
      writeFileSync(f, `${readFileSync(f, 'utf8')}\n// edited\n`);
    },
    run: (ctx) => loadArtifact(join(ctx.dir, 'a')),
  },
  {
    id: 'artifacts/kernel-missing',
    area: 'artifacts',
    kind: 'library',
    what: 'a kernel file deleted',
    expect: { error: 'WgflowError', message: /kernel files? (is|are) missing/ },
    setup: async (ctx) => {
      const a = await artifact(ctx.dir);
      rmSync(join(a, k0(readManifest(a)).file as string));
    },
    run: (ctx) => loadArtifact(join(ctx.dir, 'a')),
  },
  tamper(
    'kernel-path-escape',
    'a kernel file "../../etc/passwd"',
    (m) => {
      k0(m).file = '../../etc/passwd';
    },
    /outside the artifact directory/,
    (dir) => loadArtifact(dir),
  ),
  {
    id: 'artifacts/url-relative-outside-a-page',
    area: 'artifacts',
    kind: 'library',
    what: 'loadArtifactFromUrl with a relative URL in Node (no page to resolve it against)',
    expect: { error: 'WgflowError', message: /artifact URL "art\/" is not a URL .*must be absolute/ },
    run: () => loadArtifactFromUrl('art/'),
  },
  tamper(
    'window-past-buffer',
    'a binding window past the end of its buffer',
    (m) => {
      const k = k0(m);
      const bufs = m.buffers as { bytes: number }[];
      k.windows = (k.bindings as number[]).map((b) => [0, (bufs[b]?.bytes ?? 0) + 64]);
    },
    /kernels\[0\]\.windows\[0\] is not \[offset, bytes\] inside buffer/,
  ),
  tamper(
    'window-count',
    'fewer binding windows than bindings',
    (m) => {
      k0(m).windows = [[0, 4]];
    },
    /kernels\[0\]\.windows is not one \[offset, bytes\] per binding/,
  ),
  tamper(
    'sizes-undeclared-symbol',
    'a kernel size slot naming an undeclared size symbol',
    (m) => {
      k0(m).sizes = [{ s: 'N' }];
    },
    /kernels\[0\]\.sizes\[0\]: size symbol "N" is not declared/,
  ),
  tamper(
    'grid-deep',
    'a grid expression nested 1000 deep',
    (m) => {
      let d: unknown = 1;
      for (let i = 0; i < 1000; i++) d = { op: '+', a: [d] };
      m.symbols = [{ name: 'N', min: 1, max: 4 }];
      k0(m).grid = { linear: d };
    },
    /kernels\[0\]\.grid\.linear: size expression nested deeper than 32/,
  ),
  tamper(
    'symbol-range',
    'a size symbol with min > max',
    (m) => {
      m.symbols = [{ name: 'N', min: 5, max: 2 }];
    },
    /symbols\[0\] is not \{name, min ≥ 1, max ≥ min\}/,
  ),
  tamper(
    'dims-length',
    'an input with fewer dims than axes',
    (m) => {
      ((m.inputs as Record<string, unknown>[])[0] as Record<string, unknown>).dims = [1];
    },
    /inputs\[0\]\.dims is not a list of 2 size expressions/,
  ),
  tamper(
    'chunks-bad-buffer',
    'a tensor chunked into buffer 999',
    (m) => {
      const t = (m.inputs as Record<string, unknown>[])[0] as Record<string, unknown>;
      t.chunks = [t.buffer, 999];
    },
    /inputs\[0\]\.chunks is not a list of buffers/,
  ),
  tamper(
    'value-range-nan',
    'an index input whose value range is not numbers',
    (m) => {
      ((m.inputs as Record<string, unknown>[])[0] as Record<string, unknown>).valueRange = {
        min: 'a',
        max: 3,
        rule: 'x',
      };
    },
    /inputs\[0\]\.valueRange is not \{min, max, allow\?, rule\}/,
  ),
];
