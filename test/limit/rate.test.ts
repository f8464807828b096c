import { expect } from 'chai';
import { parseRateLimit, readRateLimit, RateLimitError, MAX_PER_SECOND } from '../../src/limit/rate.ts';
import type { ValidationIssue } from '../../src/model/errors.ts';

function refusal(raw: unknown, path = 'tenants[3].rateLimit'): RateLimitError {
  try {
    parseRateLimit(raw, path);
  } catch (err) {
    expect(err).to.be.instanceOf(RateLimitError);
    return err as RateLimitError;
  }
  throw new Error(`${JSON.stringify(raw)} was accepted`);
}

describe('limit/rate: parseRateLimit', () => {
  it('reads perSecond and burst', () => {
    expect(parseRateLimit({ perSecond: 10, burst: 50 }, 'x')).to.deep.equal({ perSecond: 10, burst: 50 });
  });

  it('defaults burst to perSecond', () => {
    expect(parseRateLimit({ perSecond: 7 }, 'x')).to.deep.equal({ perSecond: 7, burst: 7 });
  });

  it('takes a missing or null value as no limit', () => {
    expect(parseRateLimit(undefined, 'x')).to.equal(undefined);
    expect(parseRateLimit(null, 'x')).to.equal(undefined);
  });

  it('accepts the largest limit and refuses one above it', () => {
    expect(parseRateLimit({ perSecond: MAX_PER_SECOND, burst: MAX_PER_SECOND }, 'x')).to.deep.equal({
      perSecond: MAX_PER_SECOND,
      burst: MAX_PER_SECOND,
    });
    expect(refusal({ perSecond: MAX_PER_SECOND + 1 }).message).to.include('1000001');
  });

  const bad: Array<[string, unknown, string, string]> = [
    ['zero', { perSecond: 0 }, '.perSecond', '0'],
    ['a negative rate', { perSecond: -5 }, '.perSecond', '-5'],
    ['a fraction', { perSecond: 2.5 }, '.perSecond', '2.5'],
    ['a numeric string', { perSecond: '10' }, '.perSecond', '"10"'],
    ['NaN', { perSecond: Number.NaN }, '.perSecond', 'NaN'],
    ['Infinity', { perSecond: Number.POSITIVE_INFINITY }, '.perSecond', 'Infinity'],
    ['a huge number', { perSecond: 1e20 }, '.perSecond', '100000000000000000000'],
    ['a missing perSecond', { burst: 5 }, '.perSecond', 'a missing value'],
    ['a zero burst', { perSecond: 5, burst: 0 }, '.burst', '0'],
    ['a null burst', { perSecond: 5, burst: null }, '.burst', 'null'],
    ['a boolean burst', { perSecond: 5, burst: true }, '.burst', 'true'],
    ['an array', [10, 10], '', 'an array'],
    ['a number', 10, '', '10'],
    ['a string', '10/s', '', '"10/s"'],
    ['an unknown field', { perSecond: 5, perMinute: 100 }, '', '"perMinute"'],
  ];
  for (const [what, raw, suffix, shown] of bad) {
    it(`refuses ${what}, naming the path and the value`, () => {
      const err = refusal(raw);
      expect(err.code).to.equal('ERR_INVALID_RATE_LIMIT');
      expect(err.issues[0]?.path).to.equal(`tenants[3].rateLimit${suffix}`);
      expect(err.message).to.include(`tenants[3].rateLimit${suffix}`).and.include(shown);
    });
  }

  it('cuts a long hostile string in the message', () => {
    const err = refusal({ perSecond: 'x'.repeat(10000) });
    expect(err.message.length).to.be.below(300);
  });

  it('collects every problem with readRateLimit', () => {
    const issues: ValidationIssue[] = [];
    expect(readRateLimit({ perSecond: 0, burst: -1, extra: 1 }, 'r', issues)).to.equal(undefined);
    expect(issues.map((i) => i.path)).to.have.members(['r', 'r.perSecond', 'r.burst']);
  });
});
