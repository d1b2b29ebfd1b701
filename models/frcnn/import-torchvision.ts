/**
 * ImageNet-pretrained VGG16 weights from torchvision, exported as safetensors (e.g. in Python:
 * `safetensors.torch.save_file(torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict(), "vgg16.safetensors")`),
 * mapped onto frcnn-vgg16's parameters through the model's ParamMap (layers.ts):
 *
 * - features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight/bias (conv1_1 … conv5_3): same names, same
 *   OIHW layout [cout, cin, 3, 3];
 * - classifier.0 (fc6) and classifier.3 (fc7): torch.nn.Linear layout [out, in], as ours. classifier.0's
 *   input is torch.flatten of the [512, 7, 7] avgpool output, index c·49 + y·7 + x; our RoI head
 *   flattens the RoIPool output [R, 512, 7, 7] with reshape([R, 512·49]), the same C-major order, so the
 *   weight needs no permutation;
 * - classifier.6 (the 1000-class ImageNet classifier) has no counterpart (our cls_score/bbox_pred are
 *   new layers): ignored, with a note; so is any other key the model does not use (listed).
 *
 * F16, BF16 and F64 tensors are converted to f32 by the reader (noted per tensor); integer tensors
 * are an error. Every mismatch (missing key, wrong shape, wrong dtype) is collected and reported in
 * one WgflowError naming the file, the key, what was expected and what was found.
 * torchvision's VGG16 expects RGB in [0, 1] normalized by IMAGENET_MEAN_RGB / IMAGENET_STD_RGB
 * (data/image.ts), not the BGR 0–255 minus PFR_PIXEL_MEANS_BGR of the Caffe models.
 */
import { WgflowError } from '../../compiler/errors.js';
import { readSafetensors, type SafetensorsContents } from '../../runtime/safetensors.js';
import type { ParamMap } from './layers.js';

export interface TorchvisionImportOptions {
  /** true (default): every torchvision key the model maps must be in the file. false: missing keys are listed in `missing`. */
  readonly strict?: boolean;
  /** Prefix of every key in the file, e.g. "module." or "backbone." (default none). */
  readonly prefix?: string;
  /** File name for messages when `source` is already parsed (default "<safetensors>"). */
  readonly file?: string;
}

export interface TorchvisionImport {
  /** Our parameter name → values (split weights already cut into their parts). */
  readonly params: Map<string, Float32Array>;
  /** torchvision keys that were imported. */
  readonly imported: readonly string[];
  /** torchvision keys the model maps that the file lacks (only with strict: false; those params keep their initial values). */
  readonly missing: readonly string[];
  /** Keys of the file that map to nothing (ignored). */
  readonly unused: readonly string[];
  /** Human-readable notes: ignored keys, dtype conversions, input normalization. */
  readonly warnings: readonly string[];
}

const NORMALIZATION_NOTE =
  'torchvision VGG16 weights expect RGB in [0, 1] normalized with IMAGENET_MEAN_RGB / IMAGENET_STD_RGB ' +
  '(toFloat32(img, { mean: IMAGENET_MEAN_RGB, std: IMAGENET_STD_RGB }))';

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Maps parsed safetensors contents (see the file comment). */
export function mapTorchvisionVgg16(
  contents: SafetensorsContents,
  paramMap: ParamMap,
  opts: TorchvisionImportOptions = {},
): TorchvisionImport {
  const file = opts.file ?? '<safetensors>';
  const prefix = opts.prefix ?? '';
  const strict = opts.strict ?? true;
  const sources = paramMap.entries.filter((e) => e.torchvision !== null);
  if (sources.length === 0)
    throw new WgflowError(
      `torchvision import (${file}): the model has no parameters with torchvision names (only frcnn-vgg16 does)`,
    );
  const params = new Map<string, Float32Array>();
  const imported: string[] = [];
  const missing: string[] = [];
  const warnings: string[] = [];
  const wrongShape: string[] = [];
  const wrongDtype: string[] = [];
  const used = new Set<string>();
  for (const src of sources) {
    const key = `${prefix}${src.torchvision as string}`;
    const t = contents.tensors.get(key);
    if (!t) {
      missing.push(key);
      continue;
    }
    used.add(key);
    if (t.dtype !== 'f32') {
      wrongDtype.push(`"${key}": ${t.stored}, expected a floating-point tensor (F32; F16, BF16, F64 are converted)`);
      continue;
    }
    if (t.shape.length !== src.shape.length || t.shape.some((d, i) => d !== src.shape[i])) {
      wrongShape.push(`"${key}": expected ${shapeText(src.shape)}, got ${shapeText(t.shape)}`);
      continue;
    }
    if (t.stored !== 'F32') warnings.push(`"${key}": ${t.stored} converted to f32`);
    const data = t.data as Float32Array;
    params.set(src.param, data);
    imported.push(key);
  }
  const problems: string[] = [];
  if (missing.length > 0 && strict) {
    const keys = [...contents.tensors.keys()];
    const prefixed = keys.find((k) => k.endsWith('features.0.weight') && k !== `${prefix}features.0.weight`);
    const hint = keys.some((k) => k.endsWith('running_mean'))
      ? ' (the file has batch-norm statistics: vgg16_bn is not supported, export torchvision.models.vgg16)'
      : prefixed !== undefined
        ? ` (the file's keys look prefixed: pass { prefix: ${JSON.stringify(prefixed.slice(0, -'features.0.weight'.length))} })`
        : '';
    problems.push(`missing key${missing.length > 1 ? 's' : ''}${hint}: ${missing.join(', ')}`);
  }
  if (wrongShape.length > 0) problems.push(`wrong shape: ${wrongShape.join('; ')}`);
  if (wrongDtype.length > 0) problems.push(`wrong dtype: ${wrongDtype.join('; ')}`);
  if (problems.length > 0)
    throw new WgflowError(`torchvision VGG16 weights ${file} do not fit the model:\n  ${problems.join('\n  ')}`);
  const unused = [...contents.tensors.keys()].filter((k) => !used.has(k));
  const head = unused.filter((k) => k.startsWith(`${prefix}classifier.6.`));
  if (head.length > 0)
    warnings.push(
      `ignored ${head.join(', ')}: torchvision's 1000-class ImageNet classifier (the detector's cls_score and bbox_pred are new layers)`,
    );
  const other = unused.filter((k) => !k.startsWith(`${prefix}classifier.6.`));
  if (other.length > 0) warnings.push(`ignored ${other.length} key(s) the model does not use: ${other.join(', ')}`);
  if (imported.length > 0) warnings.push(NORMALIZATION_NOTE);
  return { params, imported, missing: strict ? [] : missing, unused, warnings };
}

/** Reads a safetensors file (or takes parsed contents) and maps it (see the file comment). */
export async function importTorchvisionVgg16(
  source: string | SafetensorsContents,
  paramMap: ParamMap,
  opts: TorchvisionImportOptions = {},
): Promise<TorchvisionImport> {
  if (typeof source === 'string')
    return mapTorchvisionVgg16(await readSafetensors(source), paramMap, { ...opts, file: opts.file ?? source });
  return mapTorchvisionVgg16(source, paramMap, opts);
}
