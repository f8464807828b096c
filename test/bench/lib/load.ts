/**
 * The load: autocannon's programmatic API in this process. Latencies are
 * taken from autocannon's per-response event (ms as floats) rather than its
 * integer-millisecond histogram, so sub-millisecond p50s stay visible.
 */
import autocannon from 'autocannon';
import { percentile } from './stats.ts';

export const CONNECTIONS = 32;

export interface LoadRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface LoadResult {
  /** 2xx responses per second of the run. */
  readonly rps: number;
  readonly ok: number;
  readonly non2xx: number;
  /** Connection errors and timeouts (timeouts are counted in errors too). */
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Record<string, number>;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Responses completed in each second of the run. */
  readonly perSecond: number[];
  readonly seconds: number;
  /** CPU the load generator (this process) used, as a fraction of one core. */
  readonly loadgenCpu: number;
}

export interface RunningLoad {
  stop(): void;
  readonly done: Promise<LoadResult>;
}

/** A POST load with the given requests (autocannon cycles through them per connection). */
export function startLoad(url: string, requests: readonly LoadRequest[], seconds: number): RunningLoad {
  let latencies = new Float64Array(1 << 18);
  let count = 0;
  const perSecond: number[] = [];
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  let instance: autocannon.Instance | undefined;
  const done = new Promise<LoadResult>((resolve, reject) => {
    instance = autocannon(
      {
        url,
        connections: CONNECTIONS,
        duration: seconds,
        pipelining: 1,
        timeout: 10,
        requests: requests.map((r) => ({ method: r.method, path: r.path, headers: r.headers, body: r.body })),
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const wall = (performance.now() - wallBefore) / 1000;
        // autocannon emits one last, empty tick when it stops.
        if (perSecond.length > 0 && perSecond[perSecond.length - 1] === 0) perSecond.pop();
        const cpu = process.cpuUsage(cpuBefore);
        const sample = latencies.subarray(0, count);
        const ok = result['2xx'];
        const statusCodes: Record<string, number> = {};
        for (const [code, stat] of Object.entries(result.statusCodeStats)) statusCodes[code] = stat.count;
        resolve({
          rps: ok / result.duration,
          ok,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          p50Ms: percentile(sample, 50),
          p99Ms: percentile(sample, 99),
          maxMs: percentile(sample, 100),
          perSecond,
          seconds: result.duration,
          loadgenCpu: (cpu.user + cpu.system) / 1e6 / wall,
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = responseTime;
    });
    instance.on('tick', (tick: { counter: number }) => perSecond.push(tick.counter));
  });
  return {
    stop: () => instance?.stop(),
    done,
  };
}

export function runLoad(url: string, requests: readonly LoadRequest[], seconds: number): Promise<LoadResult> {
  return startLoad(url, requests, seconds).done;
}

/** The bench's request: POST /api with a 400-byte JSON body and a bearer token. */
export function benchRequest(body: string, token: string, extraHeaders: Record<string, string> = {}): LoadRequest {
  return {
    method: 'POST',
    path: '/api/bench',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...extraHeaders },
    body,
  };
}
