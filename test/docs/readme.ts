/**
 * The README's marked code blocks, so that tests run what the README says:
 * a line `<!-- recipe:NAME -->` right before a fenced block names it.
 */
import { readFileSync } from 'node:fs';

export const README = new URL('../../README.md', import.meta.url);

/** The text of the fenced block marked `<!-- recipe:NAME -->`; throws when it is missing or marked twice. */
export function readmeBlock(name: string, readme: string = readFileSync(README, 'utf8')): string {
  const marker = `<!-- recipe:${name} -->`;
  const first = readme.indexOf(marker);
  if (first < 0) throw new Error(`README has no block marked ${marker}`);
  if (readme.indexOf(marker, first + 1) >= 0) throw new Error(`README marks two blocks ${marker}`);
  const match = /^\s*\n(`{3,})[^\n]*\n([\s\S]*?)\n\1[ \t]*$/m.exec(readme.slice(first + marker.length));
  if (match === null || match.index !== 0) throw new Error(`${marker} is not followed by a fenced code block`);
  return `${match[2]}\n`;
}

/** Replaces each `from` with its `to`, requiring every `from` to occur exactly once, so the README cannot drift silently. */
export function substitute(text: string, replacements: ReadonlyArray<readonly [string, string]>): string {
  let out = text;
  for (const [from, to] of replacements) {
    const count = out.split(from).length - 1;
    if (count !== 1) throw new Error(`expected ${JSON.stringify(from)} exactly once in the README block, found it ${count} time(s)`);
    out = out.replace(from, () => to);
  }
  return out;
}
