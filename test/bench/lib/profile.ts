/**
 * Summarises V8 .cpuprofile files (node --cpu-prof): self time by function
 * (functionName + file:line), self time by area (oingate src, a package,
 * node internals, GC), and inclusive time of oingate's own functions.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './children.ts';
import { table } from './stats.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

const repoUrl = `file://${REPO_ROOT}`;

function shortUrl(url: string): string {
  if (url.startsWith(repoUrl)) return url.slice(repoUrl.length);
  if (url.startsWith('file://')) return url.replace(/^file:\/\/.*?\/node_modules\//, 'node_modules/');
  return url;
}

interface CallFrameWithColumn extends CallFrame {
  columnNumber?: number;
}

/**
 * functionName + file:line. tsx serves oingate's TypeScript whitespace-minified
 * (one line), so for src/ and test/ the line is meaningless: the file alone
 * is given, plus the column for anonymous functions.
 */
function keyOf(frame: CallFrameWithColumn): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  const url = shortUrl(frame.url);
  if (url.startsWith('src/') || url.startsWith('test/')) {
    return frame.functionName ? `${name}  ${url}` : `${name}  ${url}@col ${(frame.columnNumber ?? 0) + 1}`;
  }
  return `${name}  ${url}:${frame.lineNumber + 1}`;
}

function areaOf(frame: CallFrame): string {
  const url = shortUrl(frame.url);
  if (!frame.url) {
    if (frame.functionName.startsWith('(')) return frame.functionName;
    return '(native / V8 builtins)';
  }
  if (url.startsWith('src/')) return `oingate ${url}`;
  if (url.startsWith('test/')) return `bench ${url}`;
  const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `package ${pkg[1]}`;
  if (url.startsWith('node:')) return `node ${url.replace(/^node:internal\//, '').split('/')[0]}`;
  return url;
}

export interface ProfileSummary {
  readonly file: string;
  readonly seconds: number;
  readonly idleShare: number;
  readonly text: string;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? 'n/a' : `${((100 * part) / whole).toFixed(1)}%`;
}

export function summarise(profile: CpuProfile, file: string, top = 10): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  const areas = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    if (node.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + hits);
    const parentId = parent.get(node.id);
    const parentFrame = parentId === undefined ? undefined : byId.get(parentId)?.callFrame;
    if (parentFrame) {
      const from = callers.get(key) ?? new Map<string, number>();
      const parentKey = keyOf(parentFrame);
      from.set(parentKey, (from.get(parentKey) ?? 0) + hits);
      callers.set(key, from);
    }
    const area = areaOf(node.callFrame);
    areas.set(area, (areas.get(area) ?? 0) + hits);
    // Inclusive time of oingate's own functions, each counted once per stack.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame || !shortUrl(frame.url).startsWith('src/')) continue;
      const k = keyOf(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + hits);
    }
  }
  const busy = total - idle;
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  const msPerHit = total === 0 ? 0 : (seconds * 1000) / total;
  const mainCaller = (key: string) => {
    const from = callers.get(key);
    if (!from) return '';
    const [best, hits] = [...from.entries()].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
    const all = [...from.values()].reduce((a, b) => a + b, 0);
    return `${best} (${Math.round((100 * hits) / all)}%)`;
  };
  const rows = (map: Map<string, number>, n: number, label: string, withCaller = false) =>
    table(
      [
        [label, 'self ms', '% of busy', ...(withCaller ? ['mostly called from'] : [])],
        ...[...map.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, n)
          .map(([key, hits]) => [key, (hits * msPerHit).toFixed(0), percent(hits, busy), ...(withCaller ? [mainCaller(key)] : [])]),
      ],
      new Set([1, 2]),
    );
  const inclusiveRows = table(
    [
      ['oingate function (inclusive)', 'total ms', '% of busy'],
      ...[...inclusive.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([key, hits]) => [key, (hits * msPerHit).toFixed(0), percent(hits, busy)]),
    ],
    new Set([1, 2]),
  );
  const text = [
    `profile ${file}: ${seconds.toFixed(1)} s sampled, busy ${percent(busy, total)}, idle ${percent(idle, total)}`,
    '',
    rows(self, top, `top ${top} self time (functionName  file:line)`, true),
    '',
    rows(areas, 12, 'self time by area'),
    '',
    inclusiveRows,
  ].join('\n');
  return { file, seconds, idleShare: total === 0 ? 0 : idle / total, text };
}

/** Summaries of the main-thread .cpuprofile files in a directory (one per process that ran there). */
export async function summariseDirectory(directory: string, top = 10): Promise<ProfileSummary[]> {
  let names: string[];
  try {
    names = (await readdir(directory)).filter((name) => name.endsWith('.cpuprofile')).sort();
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread;
    // the others are e.g. tsx's module-loader worker.
    const main = names.filter((name) => name.split('.')[4] === '0');
    if (main.length > 0) names = main;
  } catch {
    return [];
  }
  const summaries: ProfileSummary[] = [];
  for (const name of names) {
    const file = join(directory, name);
    const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    summaries.push(summarise(profile, file, top));
  }
  return summaries;
}
