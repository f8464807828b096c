/**
 * config/prometheus-alerts.yml: valid for promtool, firing as its unit tests
 * say, and naming only metrics and labels that running gates (file store in
 * proxy mode with a JWKS tenant, and PostgreSQL store) really export. Also
 * the README's curl | grep quick look, run as written.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OIN_A, eventually, send, startGate, tokenFor, twoTenants, type Gate } from '../support/gate.ts';
import { metricsText, migrateStore, startPgGate, type PgGate } from '../support/pg-gate.ts';
import { startTestDatabase } from '../support/postgres.ts';
import { closedPort } from '../support/upstream.ts';
import { readmeBlock } from './readme.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = 'config/prometheus-alerts.yml';
const RULES_TEXT = readFileSync(new URL(`../../${RULES}`, import.meta.url), 'utf8');
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);

function promtool(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(`${dir}/promtool`)) return `${dir}/promtool`;
  return undefined;
}

function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

interface Rule {
  alert: string;
  expr: string;
  block: string;
}

/** The rules, read from the YAML by its fixed shape (one `- alert:` item each, `expr:` on one line). */
function rules(): Rule[] {
  return RULES_TEXT.split(/^\s*- alert: /m)
    .slice(1)
    .map((block) => ({ alert: block.split('\n')[0]!.trim(), expr: /^\s*expr: (.+)$/m.exec(block)?.[1]?.trim() ?? '', block }));
}

/** Metric name -> the label pairs (`name="value"`) and label names seen on its samples. */
interface Exposition {
  types: Set<string>;
  labels: Map<string, Set<string>>;
  pairs: Map<string, Set<string>>;
}

function parseExposition(texts: string[]): Exposition {
  const exposition: Exposition = { types: new Set(), labels: new Map(), pairs: new Map() };
  for (const line of texts.join('\n').split('\n')) {
    const type = /^# TYPE (\S+) /.exec(line);
    if (type) exposition.types.add(type[1]!);
    const sample = /^(oingate_\w+)\{([^}]*)\} /.exec(line);
    if (!sample) continue;
    for (const [, name, value] of sample[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      for (const metric of [sample[1]!, sample[1]!.replace(/_(bucket|sum|count)$/, '')]) {
        if (!exposition.labels.has(metric)) exposition.labels.set(metric, new Set());
        if (!exposition.pairs.has(metric)) exposition.pairs.set(metric, new Set());
        exposition.labels.get(metric)!.add(name!);
        exposition.pairs.get(metric)!.add(`${name}="${value}"`);
      }
    }
  }
  return exposition;
}

function quickLook(adminUrl: string): Promise<{ code: number; output: string }> {
  const block = readmeBlock('monitoring-quick-look');
  expect(block).to.contain('localhost:9090');
  // As typed at a prompt: a grep that finds nothing (no refusals yet) is no failure there.
  return run('bash', ['-c', block.replaceAll('localhost:9090', new URL(adminUrl).host)]);
}

describe('Prometheus alert rules (config/prometheus-alerts.yml)', function () {
  this.timeout(60_000);
  let fileGate: Gate;
  let pgGate: PgGate;

  before(async function () {
    const idp = await closedPort();
    fileGate = await startGate(
      [...twoTenants(), { oin: '00000001000000000009', cidrs: ['127.0.0.0/8'], jwksUri: `http://127.0.0.1:${idp}/jwks.json` }],
      { OINGATE_UPSTREAM: `http://127.0.0.1:${await closedPort()}` },
    );
    // One allowed request the upstream fails, one refusal, one failed JWKS fetch.
    expect((await send(fileGate.url, { method: 'GET', headers: { 'x-oin': OIN_A, authorization: `Bearer ${tokenFor(OIN_A)}` } })).status).to.equal(502);
    expect((await send(fileGate.url, { method: 'GET', headers: { 'x-oin': OIN_A } })).status).to.equal(401);
    await eventually(async () => {
      expect(await metricsText(fileGate.adminUrl)).to.match(/^oingate_jwks_fetches_total\{[^}]*outcome="error"/m);
    });
    const db = await startTestDatabase();
    const url = await db.createDatabase();
    await migrateStore(url);
    pgGate = await startPgGate(url);
  });
  after(async function () {
    await fileGate?.close();
    await pgGate?.close();
  });

  it('has ten alerts, each with an expression, a severity and a summary', function () {
    const all = rules();
    expect(all.map((r) => r.alert)).to.have.length(10).and.include.members([
      'OingateKeyExpiring',
      'OingateConfigInvalid',
      'OingateStoreUnreachable',
      'OingateStoreDisconnected',
      'OingateWhitelistStale',
      'OingateRefusalSpike',
    ]);
    for (const rule of all) {
      expect(rule.expr, rule.alert).to.match(/oingate_\w+/);
      expect(rule.block, rule.alert).to.match(/^\s*severity: (critical|warning)$/m);
      expect(rule.block, rule.alert).to.match(/^\s*summary: ".+"$/m);
    }
  });

  it('passes promtool check rules and the promtool unit tests in test/docs/prometheus-alerts.test.yml', async function () {
    const binary = promtool();
    if (binary === undefined) {
      // Without promtool (.ci/run installs it): at least every expression's brackets and quotes balance.
      for (const rule of rules()) {
        for (const [open, close] of [['(', ')'], ['{', '}'], ['[', ']']] as const) {
          expect(rule.expr.split(open).length, `${rule.alert} ${open}${close}`).to.equal(rule.expr.split(close).length);
        }
        expect((rule.expr.match(/"/g) ?? []).length % 2, rule.alert).to.equal(0);
      }
      return;
    }
    const checked = await run(binary, ['check', 'rules', RULES]);
    expect(checked.output).to.contain('SUCCESS: 10 rules found');
    expect(checked.code, checked.output).to.equal(0);
    const tested = await run(binary, ['test', 'rules', 'test/docs/prometheus-alerts.test.yml']);
    expect(tested.code, tested.output).to.equal(0);
    expect(tested.output).to.contain('SUCCESS');
  });

  it('names only metrics, labels and label values that running gates export', async function () {
    const exposition = parseExposition([await metricsText(fileGate.adminUrl), await metricsText(pgGate.adminUrl)]);
    for (const rule of rules()) {
      const metrics = [...new Set(rule.expr.match(/oingate_\w+/g) ?? [])];
      for (const metric of metrics) expect(exposition.types, `${rule.alert}: ${metric}`).to.include(metric);
      for (const [, metric, matchers] of rule.expr.matchAll(/(oingate_\w+)\{([^}]*)\}/g)) {
        for (const [, name, op, value] of matchers!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
          expect(exposition.labels.get(metric!), `${rule.alert}: ${metric} label ${name}`).to.include(name);
          if (op === '=') expect(exposition.pairs.get(metric!), `${rule.alert}: ${metric}{${name}="${value}"}`).to.include(`${name}="${value}"`);
        }
      }
      for (const [, list] of rule.expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
        for (const label of list!.split(',').map((l) => l.trim())) {
          if (TARGET_LABELS.has(label)) continue;
          const carried = metrics.some((metric) => exposition.labels.get(metric)?.has(label));
          expect(carried, `${rule.alert}: label ${label} on ${metrics.join(', ')}`).to.equal(true);
        }
      }
    }
  });

  it('shows load state, refusals by reason and readiness with the README quick look', async function () {
    const file = await quickLook(fileGate.adminUrl);
    expect(file.code, file.output).to.equal(0);
    expect(file.output).to.match(/^oingate_tenants 3$/m);
    expect(file.output).to.match(/^oingate_last_load_success_timestamp_seconds [1-9]\d+$/m);
    expect(file.output).to.match(/^oingate_reloads_refused_total\{cause="invalid"\} 0$/m);
    expect(file.output).to.match(/^oingate_keys_expiring 0$/m);
    expect(file.output).to.match(/^oingate_decisions_total\{outcome="refused",reason="token_missing"\} 1$/m);
    expect(file.output).to.not.match(/outcome="allowed"/);
    expect(file.output).to.contain('"ready":true');

    const pg = await quickLook(pgGate.adminUrl);
    expect(pg.code, pg.output).to.equal(0);
    expect(pg.output).to.match(/^oingate_store_connected 1$/m);
  });
});
