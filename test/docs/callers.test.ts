/**
 * The README's "For callers" commands, run as written with bash in a
 * scratch directory holding a copy of the shipped config/whitelist.json,
 * against a real oingate serving that file. Only the address changes.
 */
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, send, startGate, type Gate } from '../support/gate.ts';
import { readmeBlock } from './readme.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OIN = '00000001234567890000';
const SIGNERS = ['sign-hs256-jsonwebtoken.mjs', 'sign-hs256-jose.mjs', 'sign-rs256-jose.mjs', 'sign-es256-node.mjs', 'sign-es256-jsonwebtoken.mjs'];

interface Run {
  stdout: string;
  stderr: string;
}

function bash(script: string, cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The README's `localhost:8080` is the test's oingate; nothing else changes. */
function againstGate(block: string, gate: Gate): string {
  expect(block).to.contain('localhost:8080');
  return block.replaceAll('localhost:8080', new URL(gate.url).host);
}

/** Each curl -i of a block answered 200 with the caller's OIN authenticated. */
function expectAllowed(run: Run, calls: number): void {
  expect(run.stdout.match(/^HTTP\/1\.1 200 OK\r?$/gm) ?? [], run.stdout).to.have.length(calls);
  expect(run.stdout.match(new RegExp(`^x-authenticated-oin: ${OIN}\\r?$`, 'gim')) ?? []).to.have.length(calls);
}

async function readyVersion(gate: Gate): Promise<string> {
  const ready = await send(gate.adminUrl, { method: 'GET', path: '/readyz' });
  expect(ready.status).to.equal(200);
  return ready.json()['version'] as string;
}

describe('README "For callers", run as written', function () {
  this.timeout(60_000);
  let dir: string;
  let gate: Gate;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'oingate-callers-'));
    await mkdir(join(dir, 'config'));
    await copyFile(join(ROOT, 'config/whitelist.json'), join(dir, 'config/whitelist.json'));
    await copyFile(join(ROOT, 'config/whitelist.schema.json'), join(dir, 'config/whitelist.schema.json'));
    // What a caller's `npm install jose jsonwebtoken` and the operator's checkout provide.
    await mkdir(join(dir, 'node_modules/.bin'), { recursive: true });
    for (const name of ['jose', 'jsonwebtoken']) await symlink(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
    await symlink(join(ROOT, 'src/bin.js'), join(dir, 'node_modules/.bin/oingate'));
    for (const file of SIGNERS) await writeFile(join(dir, file), readmeBlock(file));
    gate = await startGate(null, { OINGATE_STORE: `file:${join(dir, 'config/whitelist.json')}` });
    await eventually(async () => {
      await readyVersion(gate);
    });
  });
  after(async function () {
    await gate?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('accepts an HS256 token made with openssl from the secret string', async function () {
    const run = await bash(againstGate(readmeBlock('callers-hs256-openssl'), gate), dir);
    expectAllowed(run, 1);
    expect(gate.logs.last()).to.include({ outcome: 'allowed', oin: OIN });
  });

  it('accepts the HS256 tokens of the jsonwebtoken and jose recipes', async function () {
    const run = await bash(againstGate(readmeBlock('callers-hs256-node'), gate), dir);
    expectAllowed(run, 2);
  });

  it('refuses a token signed with the base64-decoded secret', async function () {
    const shipped = JSON.parse(await readFile(join(ROOT, 'config/whitelist.json'), 'utf8')) as {
      tenants: Array<{ keys: Array<{ kid: string; secret: string }> }>;
    };
    const key = shipped.tenants[0]!.keys[0]!;
    expect(readmeBlock('callers-hs256-openssl')).to.contain(`SECRET='${key.secret}'`);
    const decoded = Buffer.from(key.secret, 'base64');
    const token = jwt.sign({ oin: OIN }, decoded, { algorithm: 'HS256', keyid: key.kid, expiresIn: '5m' });
    const response = await send(gate.url, { method: 'GET', headers: { 'x-oin': OIN, authorization: `Bearer ${token}` } });
    expect(response.status).to.equal(401);
    expect(gate.logs.last()).to.include({ reason: 'token_bad_signature' });
  });

  it('registers openssl-made RS256 and ES256 public keys with jq --rawfile and accepts the tokens they sign', async function () {
    const before = await readyVersion(gate);
    await bash(readmeBlock('callers-keypairs'), dir);
    const checked = await bash(readmeBlock('callers-register'), dir);
    expect(checked.stdout).to.match(/ok, 1 tenant\(s\), 2 CIDR\(s\), 3 key\(s\)/);

    // The PEMs went in as JSON strings with their line breaks intact.
    const document = JSON.parse(await readFile(join(dir, 'config/whitelist.json'), 'utf8')) as {
      tenants: Array<{ keys: Array<{ kid: string; publicKey?: string }> }>;
    };
    const keys = document.tenants[0]!.keys;
    expect(keys.find((k) => k.kid === 'vb-rs-2026')?.publicKey).to.equal(await readFile(join(dir, 'rs256-public.pem'), 'utf8'));
    expect(keys.find((k) => k.kid === 'vb-es-2026')?.publicKey).to.equal(await readFile(join(dir, 'es256-public.pem'), 'utf8'));

    await eventually(async () => {
      expect(await readyVersion(gate)).to.not.equal(before);
    }, 10_000);
    const run = await bash(againstGate(readmeBlock('callers-asymmetric'), gate), dir);
    expectAllowed(run, 3);
  });
});
