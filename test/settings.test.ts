import { expect } from 'chai';
import { loadSettings, SettingsError, settingsFromOptions } from '../src/settings.ts';

/** Loads settings from `env` alone, expects a SettingsError, returns it. */
function refused(env: Record<string, string>): SettingsError {
  try {
    loadSettings(env);
  } catch (error) {
    expect(error).to.be.instanceOf(SettingsError);
    const settingsError = error as SettingsError;
    expect(settingsError.code).to.equal('ERR_INVALID_SETTING');
    expect(settingsError.message).to.not.include('\n');
    return settingsError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('loadSettings', () => {
  describe('defaults', () => {
    it("equal the contract's table when nothing is set", () => {
      const settings = loadSettings({});
      expect(settings.listen).to.deep.equal({ host: '0.0.0.0', port: 8080 });
      expect(settings.adminListen).to.deep.equal({ host: '127.0.0.1', port: 9090 });
      expect(settings.store).to.deep.equal({ kind: 'file', path: 'config/whitelist.json' });
      expect(settings.upstream).to.equal(undefined);
      expect([...settings.trustedProxyTexts]).to.deep.equal([]);
      expect(settings.adminToken).to.equal(undefined);
      expect([...settings.oinField]).to.deep.equal(['oin']);
      expect(settings.oinHeader).to.equal('x-oin');
      expect(settings.oinPattern.source).to.equal('^(?:[0-9]{20})$');
      expect(settings.oinPattern.test('00000001234567890000')).to.equal(true);
      expect(settings.oinPattern.test('0000000123456789000')).to.equal(false);
      expect(settings.tenantClaim).to.equal('oin');
      expect(settings.issuer).to.equal(undefined);
      expect(settings.audience).to.equal(undefined);
      expect(settings.clockToleranceSeconds).to.equal(30);
      expect(settings.maxTokenLifetimeSeconds).to.equal(86400);
      expect(settings.bodyLimitBytes).to.equal(1048576);
      expect(settings.upstreamTimeoutMs).to.equal(30000);
      expect(settings.logLevel).to.equal('info');
      expect(settings.jwksTtlSeconds).to.equal(300);
      expect(settings.jwksMaxStaleSeconds).to.equal(86400);
      expect(settings.pgResyncSeconds).to.equal(60);
    });

    it('treats an empty variable as unset', () => {
      const settings = loadSettings({ OINGATE_LISTEN: '', OINGATE_CLOCK_TOLERANCE: '', OINGATE_UPSTREAM: '', OINGATE_ADMIN_TOKEN: '' });
      expect(settings.listen).to.deep.equal({ host: '0.0.0.0', port: 8080 });
      expect(settings.clockToleranceSeconds).to.equal(30);
      expect(settings.upstream).to.equal(undefined);
      expect(settings.adminToken).to.equal(undefined);
    });

    it('reads good values of every kind', () => {
      const settings = loadSettings({
        OINGATE_LISTEN: '[::1]:8443',
        OINGATE_ADMIN_LISTEN: 'localhost:0',
        OINGATE_STORE: 'postgresql://oingate@db:5432/oingate',
        OINGATE_UPSTREAM: 'http://127.0.0.1:3000',
        OINGATE_TRUSTED_PROXIES: '10.0.0.0/8, 2001:db8::/32',
        OINGATE_ADMIN_TOKEN: 'a-long-enough-admin-token',
        OINGATE_OIN_FIELD: 'meta.oin',
        OINGATE_OIN_HEADER: 'X-Tenant-OIN',
        OINGATE_OIN_PATTERN: '^[A-Z]{3}$',
        OINGATE_TENANT_CLAIM: 'tenant',
        OINGATE_ISSUER: 'https://idp.example',
        OINGATE_AUDIENCE: 'api',
        OINGATE_CLOCK_TOLERANCE: '300',
        OINGATE_MAX_TOKEN_LIFETIME: '3600',
        OINGATE_BODY_LIMIT: '1024',
        OINGATE_UPSTREAM_TIMEOUT_MS: '500',
        OINGATE_LOG_LEVEL: 'silent',
        OINGATE_JWKS_TTL: '60',
        OINGATE_JWKS_MAX_STALE: '0',
        OINGATE_PG_RESYNC_SECONDS: '5',
      });
      expect(settings.listen).to.deep.equal({ host: '::1', port: 8443 });
      expect(settings.adminListen).to.deep.equal({ host: 'localhost', port: 0 });
      expect(settings.store).to.deep.equal({ kind: 'postgres', url: 'postgresql://oingate@db:5432/oingate' });
      expect(settings.upstream?.href).to.equal('http://127.0.0.1:3000/');
      expect([...settings.trustedProxyTexts]).to.deep.equal(['10.0.0.0/8', '2001:db8::/32']);
      expect(settings.adminToken).to.equal('a-long-enough-admin-token');
      expect([...settings.oinField]).to.deep.equal(['meta', 'oin']);
      expect(settings.oinHeader).to.equal('x-tenant-oin');
      expect(settings.oinPattern.test('ABC')).to.equal(true);
      expect(settings.tenantClaim).to.equal('tenant');
      expect(settings.issuer).to.equal('https://idp.example');
      expect(settings.audience).to.equal('api');
      expect(settings.clockToleranceSeconds).to.equal(300);
      expect(settings.maxTokenLifetimeSeconds).to.equal(3600);
      expect(settings.bodyLimitBytes).to.equal(1024);
      expect(settings.upstreamTimeoutMs).to.equal(500);
      expect(settings.logLevel).to.equal('silent');
      expect(settings.jwksTtlSeconds).to.equal(60);
      expect(settings.jwksMaxStaleSeconds).to.equal(0);
      expect(settings.pgResyncSeconds).to.equal(5);
    });
  });

  describe('refuses a bad value, naming the variable', () => {
    const cases: Array<[string, string, string?]> = [
      ['OINGATE_LISTEN', '8080'],
      ['OINGATE_LISTEN', 'host:99999'],
      ['OINGATE_LISTEN', 'host:'],
      ['OINGATE_ADMIN_LISTEN', '127.0.0.1:65536'],
      ['OINGATE_STORE', 'ftp://x'],
      ['OINGATE_STORE', 'file:'],
      ['OINGATE_STORE', 'config/whitelist.json'],
      ['OINGATE_UPSTREAM', 'not a url'],
      ['OINGATE_UPSTREAM', 'ftp://x', 'http'],
      ['OINGATE_UPSTREAM', 'http://127.0.0.1:3000/api', 'path'],
      ['OINGATE_UPSTREAM', 'http://127.0.0.1:3000/?q=1'],
      ['OINGATE_TRUSTED_PROXIES', '10.0.0.0/0', '10.0.0.0/0'],
      ['OINGATE_TRUSTED_PROXIES', 'garbage', 'garbage'],
      ['OINGATE_TRUSTED_PROXIES', '10.0.0.0/8,garbage', 'garbage'],
      ['OINGATE_ADMIN_TOKEN', 'short', '16'],
      ['OINGATE_ADMIN_TOKEN', 'long enough but has spaces'],
      ['OINGATE_OIN_PATTERN', '[0-9]{20}', 'anchored'],
      ['OINGATE_OIN_PATTERN', '^[0-9]{20}', 'anchored'],
      ['OINGATE_OIN_PATTERN', '^([0-9]{20}$', 'regular expression'],
      ['OINGATE_OIN_FIELD', 'a..b', 'a..b'],
      ['OINGATE_OIN_FIELD', '.oin'],
      ['OINGATE_OIN_HEADER', 'bad header', 'bad header'],
      ['OINGATE_OIN_HEADER', 'x-oin:'],
      ['OINGATE_CLOCK_TOLERANCE', '301', '301'],
      ['OINGATE_CLOCK_TOLERANCE', '-1', '-1'],
      ['OINGATE_CLOCK_TOLERANCE', 'abc', 'abc'],
      ['OINGATE_CLOCK_TOLERANCE', '1.5', '1.5'],
      ['OINGATE_CLOCK_TOLERANCE', '1e2'],
      ['OINGATE_CLOCK_TOLERANCE', ' 30'],
      ['OINGATE_MAX_TOKEN_LIFETIME', '0', '0'],
      ['OINGATE_BODY_LIMIT', 'x', '"x"'],
      ['OINGATE_UPSTREAM_TIMEOUT_MS', '0', '"0"'],
      ['OINGATE_LOG_LEVEL', 'loud', 'loud'],
      ['OINGATE_JWKS_TTL', '0'],
      ['OINGATE_PG_RESYNC_SECONDS', 'soon'],
    ];
    for (const [variable, value, mentions] of cases) {
      it(`refuses ${variable}=${JSON.stringify(value)}`, () => {
        const error = refused({ [variable]: value });
        expect(error.variable).to.equal(variable);
        expect(error.message.startsWith(`${variable}: `), error.message).to.equal(true);
        if (mentions !== undefined) expect(error.message).to.include(mentions);
      });
    }

    it('accepts the limits right at the edges', () => {
      expect(loadSettings({ OINGATE_CLOCK_TOLERANCE: '0' }).clockToleranceSeconds).to.equal(0);
      expect(loadSettings({ OINGATE_CLOCK_TOLERANCE: '300' }).clockToleranceSeconds).to.equal(300);
      expect(loadSettings({ OINGATE_MAX_TOKEN_LIFETIME: '1' }).maxTokenLifetimeSeconds).to.equal(1);
      expect(loadSettings({ OINGATE_LISTEN: '127.0.0.1:65535' }).listen.port).to.equal(65535);
      expect(loadSettings({ OINGATE_ADMIN_TOKEN: 'x'.repeat(16) }).adminToken).to.equal('x'.repeat(16));
    });

    it('never echoes the admin token it refuses', () => {
      const error = refused({ OINGATE_ADMIN_TOKEN: 'sekrit-but-with spaces' });
      expect(error.message).to.not.include('sekrit');
      const short = refused({ OINGATE_ADMIN_TOKEN: 'tiny-sekrit' });
      expect(short.message).to.not.include('tiny-sekrit');
    });
  });

  describe('OINGATE_STORE with a password', () => {
    const invalid = [
      'postgres://oingate:hunter2-pg-pass@db:99999/oingate',
      'postgresql://oingate:hunter2-pg-pass@[db/oingate',
      'postgress://oingate:hunter2-pg-pass@db/oingate',
      'mysql://oingate:hunter2-pg-pass@db/oingate',
      'postgres:oingate:hunter2-pg-pass@db/oingate',
    ];
    for (const url of invalid) {
      it(`refuses ${url.replace('hunter2-pg-pass', '***')} without the password in the message`, () => {
        const error = refused({ OINGATE_STORE: url });
        expect(error.variable).to.equal('OINGATE_STORE');
        expect(error.message).to.include('OINGATE_STORE');
        expect(error.message).to.not.include('hunter2');
        expect(error.message).to.not.include('oingate:hunter');
      });
    }

    it('keeps a valid postgres URL with its password for connecting', () => {
      const url = 'postgres://oingate:hunter2-pg-pass@db:5432/oingate';
      expect(loadSettings({ OINGATE_STORE: url }).store).to.deep.equal({ kind: 'postgres', url });
    });
  });

  it('reads process.env when no environment is passed', () => {
    const saved = process.env['OINGATE_CLOCK_TOLERANCE'];
    process.env['OINGATE_CLOCK_TOLERANCE'] = '7';
    try {
      expect(loadSettings().clockToleranceSeconds).to.equal(7);
    } finally {
      if (saved === undefined) delete process.env['OINGATE_CLOCK_TOLERANCE'];
      else process.env['OINGATE_CLOCK_TOLERANCE'] = saved;
    }
  });
});

describe('OINGATE_OIN_PATTERN anchoring', () => {
  it('anchors the whole pattern, so an alternation cannot reopen either end', () => {
    const pattern = loadSettings({ OINGATE_OIN_PATTERN: '^[0-9]{20}|x$' }).oinPattern;
    expect(pattern.test('00000001234567890000')).to.equal(true);
    expect(pattern.test('x')).to.equal(true);
    expect(pattern.test('00000001234567890000; and anything')).to.equal(false);
    expect(pattern.test('anything then x')).to.equal(false);
  });
});

describe('unknown OINGATE_ variables', () => {
  it('stops start-up naming a typo of a security setting', () => {
    const error = refused({ OINGATE_REQUIRE_JIT: 'true' });
    expect(error.variable).to.equal('OINGATE_REQUIRE_JIT');
    expect(error.message).to.match(/^OINGATE_REQUIRE_JIT: /);
  });

  it('stops start-up for a setting of a feature this version lacks, even when empty', () => {
    expect(refused({ OINGATE_TRUSTED_PROXIE: '' }).variable).to.equal('OINGATE_TRUSTED_PROXIE');
  });

  it('leaves variables outside the OINGATE_ prefix alone', () => {
    expect(() => loadSettings({ PATH: '/bin', OINGATEWAY: 'x', oingate_store: 'x' })).to.not.throw();
  });
});

describe('hardening settings', () => {
  it('defaults client timeout, connection cap, drain, admin hosts and forwarded claims', () => {
    const settings = loadSettings({});
    expect(settings.clientTimeoutMs).to.equal(10000);
    expect(settings.maxConnections).to.equal(10000);
    expect(settings.drainSeconds).to.equal(10);
    expect([...settings.adminHosts]).to.deep.equal([]);
    expect([...settings.forwardClaims]).to.deep.equal([]);
  });

  it('reads admin hosts lower-cased and forwarded claims as given', () => {
    const settings = loadSettings({ OINGATE_ADMIN_HOSTS: 'Ops.Example, gate-1', OINGATE_FORWARD_CLAIMS: 'sub,scope' });
    expect([...settings.adminHosts]).to.deep.equal(['ops.example', 'gate-1']);
    expect([...settings.forwardClaims]).to.deep.equal(['sub', 'scope']);
  });

  for (const [variable, value] of [
    ['OINGATE_CLIENT_TIMEOUT_MS', '0'],
    ['OINGATE_MAX_CONNECTIONS', '-1'],
    ['OINGATE_DRAIN_SECONDS', 'ten'],
    ['OINGATE_ADMIN_HOSTS', 'evil.example/x'],
    ['OINGATE_ADMIN_HOSTS', 'a,,b'],
    ['OINGATE_FORWARD_CLAIMS', 'a b'],
    ['OINGATE_FORWARD_CLAIMS', 'Sub,sub'],
    ['OINGATE_METRICS_TENANT_LABELS', 'yes'],
    ['OINGATE_METRICS_TENANT_LABELS', '1'],
  ] as const) {
    it(`refuses ${variable}=${JSON.stringify(value)}, naming it`, () => {
      expect(refused({ [variable]: value }).variable).to.equal(variable);
    });
  }
});

describe('OINGATE_METRICS_TENANT_LABELS', () => {
  it('is off by default, and reads true or false in any case', () => {
    expect(loadSettings({}).metricsTenantLabels).to.equal(false);
    expect(loadSettings({ OINGATE_METRICS_TENANT_LABELS: 'TRUE' }).metricsTenantLabels).to.equal(true);
    expect(loadSettings({ OINGATE_METRICS_TENANT_LABELS: 'false' }).metricsTenantLabels).to.equal(false);
  });

  it('is the library option metricsTenantLabels', () => {
    expect(settingsFromOptions({ metricsTenantLabels: true }).metricsTenantLabels).to.equal(true);
  });
});

describe('settingsFromOptions', () => {
  it('takes the settings by camelCase name with the same defaults', () => {
    const settings = settingsFromOptions({ store: 'file:x.json', trustedProxies: ['10.0.0.0/8'], bodyLimit: 2048, clockTolerance: 5 });
    expect(settings.store).to.deep.equal({ kind: 'file', path: 'x.json' });
    expect([...settings.trustedProxyTexts]).to.deep.equal(['10.0.0.0/8']);
    expect(settings.bodyLimitBytes).to.equal(2048);
    expect(settings.clockToleranceSeconds).to.equal(5);
    expect(settings.maxTokenLifetimeSeconds).to.equal(86400);
  });

  it('refuses a bad option naming the option, not the variable', () => {
    try {
      settingsFromOptions({ clockTolerance: 301 });
      expect.fail('accepted');
    } catch (error) {
      expect((error as SettingsError).variable).to.equal('clockTolerance');
      expect((error as Error).message).to.match(/^clockTolerance: must be a whole number/);
    }
  });

  it('refuses an unknown option, naming it', () => {
    expect(() => settingsFromOptions({ requireJit: true })).to.throw(SettingsError, /^requireJit: /);
  });

  it('reads no environment variable', () => {
    process.env['OINGATE_CLOCK_TOLERANCE'] = '7';
    try {
      expect(settingsFromOptions({}).clockToleranceSeconds).to.equal(30);
    } finally {
      delete process.env['OINGATE_CLOCK_TOLERANCE'];
    }
  });

  it('skips the options its caller handles itself', () => {
    expect(() => settingsFromOptions({ logger: 'x' } as never, ['logger'])).to.not.throw();
  });
});
