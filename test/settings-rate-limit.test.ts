import { expect } from 'chai';
import { loadSettings, SettingsError, settingsFromOptions } from '../src/settings.ts';

function refusal(run: () => unknown): SettingsError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(SettingsError);
    return error as SettingsError;
  }
  throw new Error('expected a SettingsError');
}

describe('rate limit settings (OINGATE_RATE_LIMIT_REDIS, OINGATE_RATE_LIMIT_TIMEOUT_MS)', () => {
  it('counts locally with a 50 ms Redis timeout when nothing is set', () => {
    const settings = loadSettings({});
    expect(settings.rateLimitRedis).to.equal(undefined);
    expect(settings.rateLimitTimeoutMs).to.equal(50);
  });

  it('keeps a redis:// or rediss:// URL, password included, for connecting', () => {
    for (const url of ['redis://127.0.0.1:6379', 'redis://:s3cret-pass@redis.internal:6380/2', 'rediss://user:pw@redis.example:6379/0']) {
      expect(loadSettings({ OINGATE_RATE_LIMIT_REDIS: url }).rateLimitRedis).to.equal(url);
    }
    expect(loadSettings({ OINGATE_RATE_LIMIT_TIMEOUT_MS: '250' }).rateLimitTimeoutMs).to.equal(250);
  });

  for (const url of ['http://user:hunter2-redis@127.0.0.1:6379', 'redis-sentinel://:hunter2-redis@h:1', 'hunter2-redis', 'tcp://:hunter2-redis@127.0.0.1:6379']) {
    it(`refuses ${JSON.stringify(url.replace('hunter2-redis', '***'))} naming the variable, without the password`, () => {
      const error = refusal(() => loadSettings({ OINGATE_RATE_LIMIT_REDIS: url }));
      expect(error.variable).to.equal('OINGATE_RATE_LIMIT_REDIS');
      expect(error.message).to.match(/^OINGATE_RATE_LIMIT_REDIS: .*redis:\/\/ or rediss:\/\//);
      expect(error.message).to.not.include('hunter2');
    });
  }

  for (const value of ['0', '-1', '1.5', '10001', 'fast']) {
    it(`refuses OINGATE_RATE_LIMIT_TIMEOUT_MS=${JSON.stringify(value)}`, () => {
      expect(refusal(() => loadSettings({ OINGATE_RATE_LIMIT_TIMEOUT_MS: value })).variable).to.equal('OINGATE_RATE_LIMIT_TIMEOUT_MS');
    });
  }

  it('takes the library options rateLimitRedis and rateLimitTimeoutMs, naming them when bad', () => {
    const settings = settingsFromOptions({ rateLimitRedis: 'redis://127.0.0.1:6379', rateLimitTimeoutMs: 80 });
    expect(settings.rateLimitRedis).to.equal('redis://127.0.0.1:6379');
    expect(settings.rateLimitTimeoutMs).to.equal(80);
    const error = refusal(() => settingsFromOptions({ rateLimitRedis: 'http://x:hunter2@h' }));
    expect(error.message).to.match(/^rateLimitRedis: /);
    expect(error.message).to.not.include('hunter2');
  });
});
