/**
 * oingate under test, started exactly as `oingate serve` would (startService
 * with settings read from OINGATE_* variables; the bench passes them).
 *
 * Bench-only opt-in: BENCH_LOOP_DELAY=1 runs monitorEventLoopDelay (1 ms
 * resolution) in this process; the bench reads and resets it over IPC
 * ('loop-delay', 'loop-delay-reset'), so a stall is measured where it happens;
 * on Linux it also splits the longest stall into the time the main thread
 * ran and the time it waited for a CPU (stall-split.ts).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { startService } from '../../../src/service.ts';
import { loadSettings } from '../../../src/settings.ts';
import { announce, serve } from './ipc.ts';
import { StallSplit } from './stall-split.ts';

let loopDelay: IntervalHistogram | undefined;
let stalls: StallSplit | undefined;
if (process.env['BENCH_LOOP_DELAY'] === '1') {
  loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  stalls = StallSplit.start();
}

const settings = loadSettings(process.env);
const started = performance.now();
const service = await startService(settings);
const listening = performance.now();

announce({
  url: service.publicUrl,
  adminUrl: service.adminUrl,
  sinceProcessStartMs: listening,
  startServiceMs: listening - started,
});

const ms = (ns: number) => ns / 1e6;

serve(
  {
    'loop-delay': () =>
      loopDelay
        ? {
            maxMs: ms(loopDelay.max),
            p99Ms: ms(loopDelay.percentile(99)),
            p50Ms: ms(loopDelay.percentile(50)),
            meanMs: ms(loopDelay.mean),
            samples: loopDelay.count,
            ...(stalls ? { longest: stalls.longest, longestOwn: stalls.longestOwn } : {}),
          }
        : { error: 'start with BENCH_LOOP_DELAY=1' },
    'loop-delay-reset': () => {
      loopDelay?.reset();
      stalls?.reset();
      return { ok: true };
    },
    readiness: () => service.holder.readiness(),
    memory: () => process.memoryUsage(),
  },
  () => service.close(1_000),
);
