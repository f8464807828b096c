import type { RateLimit } from './rate.ts';

/**
 * The answer for one request. `remaining` and `resetSeconds` follow the IETF
 * httpapi RateLimit headers: requests still allowed now, and whole seconds
 * until the bucket is full again.
 */
export interface Verdict {
  readonly allowed: boolean;
  /** The burst: what a full bucket holds. */
  readonly limit: number;
  readonly remaining: number;
  /** 0 when allowed; whole seconds, at least 1, when refused. */
  readonly retryAfterSeconds: number;
  readonly resetSeconds: number;
}

/** Microseconds between two admitted requests at the steady rate. */
export function emissionInterval(limit: RateLimit): number {
  return 1_000_000 / limit.perSecond;
}

/**
 * Slack for float rounding when comparing theoretical arrival times: with an
 * interval such as 1/3 s, three steps may sum to a hair over one second.
 */
export function slack(interval: number): number {
  return interval * 1e-6;
}

/**
 * Builds the verdict from the bucket's debt after the decision: how far the
 * theoretical arrival time (TAT) lies ahead of now, in microseconds.
 */
export function verdictOf(allowed: boolean, debtUs: number, limit: RateLimit): Verdict {
  const interval = emissionInterval(limit);
  const free = (limit.burst * interval - debtUs) / interval;
  const remaining = Math.max(0, Math.min(limit.burst, Math.floor(free + 1e-6)));
  const resetSeconds = Math.max(0, Math.ceil(debtUs / 1e6 - 1e-9));
  // Refused: the next request fits once the debt has shrunk by one interval past the window.
  const waitUs = debtUs + interval - limit.burst * interval;
  const retryAfterSeconds = allowed ? 0 : Math.max(1, Math.ceil(waitUs / 1e6 - 1e-9));
  return { allowed, limit: limit.burst, remaining, retryAfterSeconds, resetSeconds };
}
