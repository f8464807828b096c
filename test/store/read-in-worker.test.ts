/**
 * The reading thread against the main thread's reader, on real files: the
 * same document (hence the same version) or the same refusal, word for word;
 * and a thread that runs out of memory, cannot start or is stopped refuses
 * the read instead of giving anything partial.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WhitelistError } from '../../src/model/errors.ts';
import { PackedTenants, PackedTexts, StreamedTenants } from '../../src/model/packed-tenants.ts';
import { decodePrepared } from '../../src/model/prepared.ts';
import { buildSnapshot, preparationKey, type Snapshot } from '../../src/model/snapshot.ts';
import { readWhitelistFile, WhitelistFileError } from '../../src/store/read-file.ts';
import { readWhitelistFileInWorker, workerHeapMb } from '../../src/store/read-in-worker.ts';
import { refusalCause } from '../../src/store/source.ts';
import { makeTenants, whitelistText } from '../bench/lib/fixtures.ts';
import { arrived, DEFAULT_PATTERN, oinOf, tenant } from '../model/helpers.ts';
import { oneHugeTenantText } from '../support/heavy-file.ts';

const options = { oinPattern: DEFAULT_PATTERN };
const HEAP_MB = 64;

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

const good = (count: number) => Array.from({ length: count }, (_, i) => tenant({ oin: oinOf(i), name: `tenant ${i}` }));

/** Files as an operator may write them, good and bad in every way the readers and the build tell apart. */
const FILES: Record<string, string | Buffer> = {
  'three good tenants': json({ tenants: good(3) }),
  'with $schema, tenants last': json({ $schema: './whitelist.schema.json', tenants: good(2) }),
  'an unknown top-level field': json({ tenants: good(1), revokedToken: [{ jti: 'j', oin: oinOf(0) }] }),
  'no tenants array': json({ tenant: good(1) }),
  'tenants not an array': json({ tenants: { a: 1 } }),
  'a top-level array': json([good(1)]),
  'a top-level string': '"tenants"',
  'a bad CIDR, a duplicate OIN and a duplicate kid': json({
    tenants: [
      tenant({ cidrs: ['10.0.0.1/8'] }),
      tenant(),
      tenant({ oin: oinOf(9), keys: [{ kid: 'k', alg: 'HS256', secret: 'x'.repeat(32) }, { kid: 'k', alg: 'HS256', secret: 'y'.repeat(32) }] }),
    ],
  }),
  'numbers JSON text cannot carry (-0, 1e400)': `{"tenants":[${json(tenant({ rateLimit: { perSecond: 1e400 } })).replace('Infinity', '1e400')},` +
    `{"oin":"${oinOf(1)}","cidrs":["192.0.2.0/24"],"rateLimit":{"perSecond":-0,"burst":-0}}]}`,
  'a __proto__ field in a tenant': `{"tenants":[{"oin":"${oinOf(1)}","cidrs":["192.0.2.0/24"],"__proto__":{"enabled":false}}]}`,
  'a duplicate key': `{"tenants":[{"oin":"${oinOf(1)}","oin":"${oinOf(2)}","cidrs":[]}]}`,
  'a syntax error': '{"tenants":[{"oin":"1"},]}',
  'a byte order mark': '\ufeff{"tenants":[]}',
  'half of a file': json({ tenants: good(3) }).slice(0, 300),
  'invalid UTF-8': Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
  'nesting deeper than 64 levels': `{"tenants":[${'['.repeat(70)}${']'.repeat(70)}]}`,
  // What follows the tenants is read after them: a build on tenants handed over early must end the same.
  'revoked tokens after the tenants': json({ tenants: good(3), revokedTokens: [{ jti: 'j', oin: oinOf(1) }] }),
  'after the tenants: a revocation for no tenant, a bad entry and an unknown field': json({
    tenants: [...good(2), tenant({ oin: oinOf(5), cidrs: ['10.0.0.1/8'] })],
    revokedTokens: [{ jti: 'j', oin: oinOf(7) }, { jti: 3, oin: oinOf(0) }],
    extra: true,
  }),
  'a second tenants array': `{"tenants":${JSON.stringify(good(2))},"tenants":${JSON.stringify(good(1))}}`,
  'revoked tokens not an array': json({ tenants: good(1), revokedTokens: { jti: 'j', oin: oinOf(0) } }),
  'revoked tokens before the tenants, one with a __proto__ field and one twice': `{"revokedTokens":[{"jti":"a","oin":"${oinOf(0)}","__proto__":{"x":1}},` +
    `{"jti":"b","oin":"${oinOf(1)}","expiresAt":null,"reason":"caf\u00e9"},{"jti":"b","oin":"${oinOf(1)}"}],"tenants":${JSON.stringify(good(2))}}`,
  'revoked tokens without tenants': `{"revokedTokens":[{"jti":"a","oin":"${oinOf(0)}"}]}`,
  'a syntax error after the tenants': `{"tenants":${JSON.stringify(good(2))},}`,
};

/** What a read and a build of `file` end in: the version, or the refusal word for word. */
async function outcome(read: () => Promise<unknown>, previous?: Snapshot): Promise<{ version?: string; refused?: string; cause?: string }> {
  let document: unknown;
  try {
    document = await read();
  } catch (error) {
    expect(error).to.be.instanceOf(WhitelistFileError);
    return { refused: (error as Error).message, cause: refusalCause(error) };
  }
  try {
    return { version: (await buildSnapshot(document, { ...options, ...(previous ? { previous } : {}) })).version };
  } catch (error) {
    // Tenants handed over while the file parsed fail the build when the rest of the file is refused.
    if (error instanceof WhitelistFileError) return { refused: error.message, cause: refusalCause(error) };
    expect(error).to.be.instanceOf(WhitelistError);
    return { refused: JSON.stringify((error as WhitelistError).issues), cause: refusalCause(error) };
  }
}

describe('reading a whitelist file in a worker thread', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-worker-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('ends every file as the main thread does: the same version, or the same refusal, cause and place', async () => {
    const accepted: string[] = [];
    for (const [name, text] of Object.entries(FILES)) {
      const file = join(dir, `${name.replace(/\W+/g, '-')}.json`);
      await writeFile(file, text);
      const main = await outcome(() => readWhitelistFile(file));
      const worker = await outcome(() => readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB }));
      expect(worker, name).to.deep.equal(main);
      // Handed over as they are parsed, one or two at a time, the build overlapping the parse.
      for (const tenantsPerChunk of [1]) {
        const streamed = await outcome(() => readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, tenantsPerChunk }));
        expect(streamed, `${name}, in chunks of ${tenantsPerChunk}`).to.deep.equal(main);
        // Validated on the reading thread too, under the build's rules.
        const validated = await outcome(() => readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, tenantsPerChunk, validation: options }));
        expect(validated, `${name}, in chunks of ${tenantsPerChunk}, validated there`).to.deep.equal(main);
      }
      if (main.version !== undefined) accepted.push(name);
    }
    // Both readers let the UTF-8 decoder drop a byte order mark; every other bad file is refused.
    expect(accepted).to.deep.equal(['three good tenants', 'with $schema, tenants last', 'a byte order mark', 'revoked tokens after the tenants']);
    const missing = join(dir, 'missing.json');
    expect(await outcome(() => readWhitelistFileInWorker(missing, { maxHeapMb: HEAP_MB }))).to.deep.equal(
      await outcome(() => readWhitelistFile(missing)),
    );
  });

  it('validates the tenants it hands over early under the rules it is given, and only then', async () => {
    const file = join(dir, 'validated.json');
    await writeFile(file, json({ tenants: [...good(3), tenant({ oin: 'bad' })] }));
    const key = preparationKey(options);
    const validated = (await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, tenantsPerChunk: 2, validation: options })) as { tenants: StreamedTenants };
    await arrived(validated.tenants);
    const texts = [0, 1, 2, 3].map((index) => validated.tenants.prepared(index, key));
    expect(texts.map((text) => Object.keys(decodePrepared(text!)))).to.deep.equal([['fingerprint', 'tenant'], ['fingerprint', 'tenant'], ['fingerprint', 'tenant'], ['issues']]);
    const plain = (await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, tenantsPerChunk: 2 })) as { tenants: StreamedTenants };
    await arrived(plain.tenants);
    expect(plain.tenants.prepared(0, key)).to.equal(undefined);
  });

  it('gives the tenants packed and the other top-level fields as parsed, in the file’s order', async () => {
    const file = join(dir, 'order.json');
    await writeFile(file, `{"$schema":"s","tenants":${JSON.stringify(good(2))},"revokedTokens":[{"jti":"j","oin":"${oinOf(0)}"}]}`);
    const document = (await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB })) as Record<string, unknown>;
    expect(Object.keys(document)).to.deep.equal(['$schema', 'tenants', 'revokedTokens']);
    expect(document['tenants']).to.be.instanceOf(PackedTenants);
    // Handed over as its entries' texts, read one at a time where the build reads them.
    const revoked = document['revokedTokens'] as PackedTexts;
    expect(revoked).to.be.instanceOf(PackedTexts);
    expect(revoked.length).to.equal(1);
    expect(revoked.value(0)).to.deep.equal({ jti: 'j', oin: oinOf(0) });
  });

  it('lets a rebuild of a rewritten file take over every unchanged tenant, as a rebuild from the main thread does', async () => {
    const tenants = makeTenants(2_000);
    const file = join(dir, 'large.json');
    await writeFile(file, whitelistText(tenants));
    const first = await buildSnapshot(await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB }), options);
    expect(first.version).to.equal((await buildSnapshot(await readWhitelistFile(file), options)).version);
    tenants[5] = { ...tenants[5]!, name: 'renamed' };
    await writeFile(file, whitelistText(tenants));
    const next = await buildSnapshot(await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB }), { ...options, previous: first });
    const viaMain = await buildSnapshot(await readWhitelistFile(file), { ...options, previous: first });
    expect(next.version).to.equal(viaMain.version).and.not.equal(first.version);
    let shared = 0;
    for (const [oin, one] of next.tenants) if (one === first.tenants.get(oin) && one === viaMain.tenants.get(oin)) shared++;
    expect(shared).to.equal(tenants.length - 1);
    expect(next.tenants.get(tenants[5]!.oin)?.name).to.equal('renamed');
  });

  it('refuses the read, as unreachable, when the thread runs out of its heap while parsing', async () => {
    const file = join(dir, 'too-large.json');
    await writeFile(file, oneHugeTenantText());
    const error = await readWhitelistFileInWorker(file, { maxHeapMb: 16 }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).to.be.instanceOf(WhitelistFileError);
    expect((error as Error).message).to.equal(`cannot read ${file}: the reading thread ran out of its 16 MiB heap`);
    expect(refusalCause(error)).to.equal('unreachable');
  });

  it('refuses the read when the thread cannot even start within its heap', async () => {
    const file = join(dir, 'small.json');
    await writeFile(file, json({ tenants: good(1) }));
    const error = await readWhitelistFileInWorker(file, { maxHeapMb: 1 }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).to.be.instanceOf(WhitelistFileError);
    expect(refusalCause(error)).to.equal('unreachable');
  });

  it('refuses the read when it is stopped, before the thread starts or while it works', async () => {
    const file = join(dir, 'stopped.json');
    await writeFile(file, whitelistText(makeTenants(20_000)));
    const stopped = `cannot read ${file}: the reading thread was stopped`;
    const before = new AbortController();
    before.abort();
    await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, signal: before.signal }).then(
      () => expect.fail('read'),
      (error: Error) => expect(error.message).to.equal(stopped),
    );
    const during = new AbortController();
    const read = readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, signal: during.signal });
    setTimeout(() => during.abort(), 20);
    await read.then(
      () => expect.fail('read'),
      (error: Error) => expect(error.message).to.equal(stopped),
    );
  });

  it('rebuilds over a snapshot with revocations from tenants handed over early as from the main thread, sharing the unchanged', async () => {
    const tenants = good(50);
    const revoked = (oins: number[]) => oins.map((i) => ({ jti: `j${i}`, oin: oinOf(i) }));
    const file = join(dir, 'revoked.json');
    // Compact: each tenant written as JSON.stringify writes it, so that both readers' digests agree.
    await writeFile(file, JSON.stringify({ tenants, revokedTokens: revoked([1, 2, 3]) }));
    const first = await buildSnapshot(await readWhitelistFile(file), options);
    tenants[10] = { ...tenants[10]!, name: 'renamed' };
    // Tenant 1 keeps its revocation, 2 loses it, 4 gains one.
    await writeFile(file, JSON.stringify({ tenants, revokedTokens: revoked([1, 3, 4]) }));
    const viaMain = await buildSnapshot(await readWhitelistFile(file), { ...options, previous: first });
    const streamed = await buildSnapshot(await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, tenantsPerChunk: 7 }), { ...options, previous: first });
    expect(streamed.version).to.equal(viaMain.version).and.not.equal(first.version);
    expect(streamed.revokedTokens).to.equal(3);
    for (const [oin, one] of viaMain.tenants) {
      const other = streamed.tenants.get(oin)!;
      expect([...(other.revokedTokens ?? [])], oin).to.deep.equal([...(one.revokedTokens ?? [])]);
      // Taken over where the main thread's rebuild takes it over: its keys and caches stay.
      expect(other === first.tenants.get(oin), oin).to.equal(one === first.tenants.get(oin));
    }
    expect(streamed.tenants.get(oinOf(1))).to.equal(first.tenants.get(oinOf(1)));
  });

  it('fails the build on tenants handed over early when the read is stopped, or the thread runs out of heap, later', async () => {
    const file = join(dir, 'stopped-streamed.json');
    await writeFile(file, whitelistText(makeTenants(20_000)));
    const during = new AbortController();
    const document = await readWhitelistFileInWorker(file, { maxHeapMb: HEAP_MB, signal: during.signal, tenantsPerChunk: 100 });
    expect((document as Record<string, unknown>)['tenants']).to.be.instanceOf(StreamedTenants);
    const build = buildSnapshot(document, options);
    during.abort();
    const stopped = await build.then(() => undefined, (error: unknown) => error);
    expect(stopped).to.be.instanceOf(WhitelistFileError);
    expect((stopped as Error).message).to.equal(`cannot read ${file}: the reading thread was stopped`);

    // Good tenants first, then one the thread cannot hold.
    const huge = JSON.parse(oneHugeTenantText()) as { tenants: unknown[] };
    const heavy = join(dir, 'heavy-last.json');
    await writeFile(heavy, JSON.stringify({ tenants: [...good(3), ...huge.tenants] }));
    // Refused whether the read resolved with the first tenants before the thread died (the usual case) or not.
    const failed = await readWhitelistFileInWorker(heavy, { maxHeapMb: 32, tenantsPerChunk: 1 })
      .then((read) => buildSnapshot(read, options))
      .then(() => undefined, (error: unknown) => error);
    expect((failed as Error).message).to.equal(`cannot read ${heavy}: the reading thread ran out of its 32 MiB heap`);
    expect(refusalCause(failed)).to.equal('unreachable');
  });

  it('bounds the thread’s heap in proportion to the file, never below 256 MiB', () => {
    expect(workerHeapMb(0)).to.equal(256);
    expect(workerHeapMb(19 * 2 ** 20)).to.equal(256);
    expect(workerHeapMb(100 * 2 ** 20)).to.equal(1200);
  });
});
