#!/usr/bin/env node
// Runs the TypeScript sources directly: no build step between a clone and `oingate serve`.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
