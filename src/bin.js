#!/usr/bin/env node
// In a checkout the TypeScript sources run directly (tsx), so `npm start`
// never runs a stale build; an installed package ships only the compiled
// dist/, which plain node runs.
import { existsSync } from 'node:fs';

const sources = new URL('./cli.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import(new URL('../dist/cli.js', import.meta.url).href);
}
