/**
 * oingate under test, started exactly as `oingate serve` would (startService
 * with settings read from OINGATE_* variables; the bench passes them).
 *
 * Bench-only opt-in: BENCH_LOOP_DELAY=1 runs monitorEventLoopDelay (1 ms
 * resolution) in this process; the bench reads and resets it over IPC
 * ('loop-delay', 'loop-delay-reset'), so a stall is measured where it happens.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { startService } from '../../../src/service.ts';
import { loadSettings } from '../../../src/settings.ts';
import { announce, serve } from './ipc.ts';

let loopDelay: IntervalHistogram | undefined;
if (process.env['BENCH_LOOP_DELAY'] === '1') {
  loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
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
          }
        : { error: 'start with BENCH_LOOP_DELAY=1' },
    'loop-delay-reset': () => {
      loopDelay?.reset();
      return { ok: true };
    },
    readiness: () => service.holder.readiness(),
    memory: () => process.memoryUsage(),
  },
  () => service.close(1_000),
);
