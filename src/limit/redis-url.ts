// What the settings need of the Redis limiter, without loading ioredis
// (~150 ms to import): the limiter itself is loaded only when a Redis URL is set.

/** OINGATE_RATE_LIMIT_REDIS is not a redis:// or rediss:// URL. */
export class RedisUrlError extends Error {
  readonly code = 'ERR_INVALID_REDIS_URL';
  constructor(shown: string) {
    super(`rate limit Redis ${shown} is not a redis:// or rediss:// URL`);
    this.name = 'RedisUrlError';
  }
}

/** OINGATE_RATE_LIMIT_TIMEOUT_MS when unset: the longest wait for Redis per decision. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 50;

/** The URL as shown in logs and /readyz (no credentials, no query), and the password to scrub. */
export function describeUrl(raw: string): { shown: string; secret: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RedisUrlError('(unparsable URL)');
  }
  const secret = decodeURIComponent(url.password) || url.searchParams.get('password') || '';
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  const shown = url.toString();
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new RedisUrlError(shown);
  return { shown, secret };
}
