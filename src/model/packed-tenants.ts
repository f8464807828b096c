/**
 * A whitelist's tenants handed over from the thread that parsed the file:
 * per tenant its JSON text (or what that thread validated instead, see
 * prepared.ts), its OIN and the digest of its document, packed into a few
 * typed arrays. Handing those to another thread moves their
 * buffers, where a clone of the parsed tenants would build 100,000 object
 * graphs on the receiving heap; and a tenant is parsed
 * only when it is asked for, so one taken over from the enforced snapshot by
 * its digest is never parsed at all. Pure: no I/O.
 */
import { hash } from 'node:crypto';
import { DIGEST_BYTES, digestOfDocument } from './document-digest.ts';
import { isRecord } from './values.ts';

/** The tenants list as buildSnapshot walks it: a parsed array, or tenants packed by another thread. */
export interface TenantList {
  readonly length: number;
  /** The tenant's OIN, when its document is an object whose `oin` is a string. */
  oin(index: number): string | undefined;
  /** A digest of the tenant's document: equal digests, equal documents ('' for one never to be taken over). */
  digest(index: number): string;
  /** The tenant's document, exactly as parsed. */
  document(index: number): unknown;
  /** For a list still arriving: undefined once complete, else settled when more came (see StreamedTenants). */
  arrival?(): Promise<void> | undefined;
  /**
   * The tenant as the parsing thread validated it (see prepared.ts), when
   * it did so under the options `key` names (see preparationKey); else undefined.
   */
  prepared?(index: number, key: string): string | undefined;
}

/**
 * What crosses the thread boundary: typed arrays only, whose buffers are
 * transferred, so that nothing of the size of the file is copied or
 * deserialized on the receiving thread (a 19 MiB string took 30-60 ms there).
 */
export interface PackedTenantFields {
  /** Every tenant's JSON text; '' for one handed over prepared (see `prepared`), which is built from that alone. */
  readonly texts: PackedTextFields;
  /**
   * Every tenant's OIN when it is a string; '' for one without (an empty OIN
   * is never valid, so nothing is lost).
   */
  readonly oins: PackedTextFields;
  /** DIGEST_BYTES per tenant: SHA-256 of its text. */
  readonly digests: Uint8Array;
  /** Every tenant as validated on the parsing thread under the options `key` names ('' for one it could not). */
  readonly prepared?: { readonly key: string; readonly texts: PackedTextFields };
}

/** How the packing thread validates a tenant, when it does: see preparedText in snapshot.ts. */
export interface TenantPreparation {
  /** Names the options it validates under (preparationKey). */
  readonly key: string;
  /** The tenant at `index` of the document, validated and encoded. */
  text(value: unknown, index: number): string;
}

/** Texts one after the other in UTF-8 and where each ends: what crosses for a list of strings. */
export interface PackedTextFields {
  readonly texts: Uint8Array;
  readonly ends: Uint32Array;
}

/** The buffers of packed fields, to transfer rather than copy. */
export function buffersOf(packed: PackedTenantFields | PackedTextFields): ArrayBuffer[] {
  const arrays =
    'digests' in packed
      ? [packed.texts.texts, packed.texts.ends, packed.oins.texts, packed.oins.ends, packed.digests]
      : [packed.texts, packed.ends];
  if ('digests' in packed && packed.prepared) arrays.push(packed.prepared.texts.texts, packed.prepared.texts.ends);
  return arrays.map((array) => array.buffer as ArrayBuffer);
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * Packs the tenants of a whitelist as the strict parser reports them (its
 * `elements` option, for the top-level `tenants`): from each one's text as
 * written, so that no tenant stays parsed on the packing thread's heap and
 * none is written out again. JSON.parse of the text of a value the strict
 * parser accepted gives that very value (-0, 1e400, a "__proto__" key), so
 * the text is all that crosses. Its digest is that of the text: equal text,
 * equal document; a tenant written otherwise than before is simply built
 * again (one written as JSON.stringify writes it has the digest
 * digestOfDocument gives, as when the file is read on the main thread).
 */
export class TenantPacker {
  readonly key = 'tenants';
  #texts: string[] = [];
  #oins: (string | undefined)[] = [];
  #prepared: string[] = [];
  #digests: Buffer[] = [];
  /** Tenants reported so far: the index of the next one in the document. */
  #count = 0;
  readonly #chunk: ((fields: PackedTenantFields) => void) | undefined;
  readonly #perChunk: number;
  readonly #preparation: TenantPreparation | undefined;

  /**
   * With `chunk`, every `perChunk` tenants are packed and handed to it as
   * they are parsed (the rest by {@link fields}), so that a build can start
   * on them meanwhile; they are vouched for only once the parse succeeds.
   * With `preparation`, each tenant is validated here too (see TenantPreparation).
   */
  constructor(chunk?: (fields: PackedTenantFields) => void, perChunk = Infinity, preparation?: TenantPreparation) {
    this.#chunk = chunk;
    this.#perChunk = perChunk;
    this.#preparation = preparation;
  }

  element(value: unknown, text: string): null {
    const raw = isRecord(value) ? value['oin'] : undefined;
    // An OIN UTF-8 cannot carry exactly (a lone surrogate) is left out: that tenant is built, never taken over.
    const oin = typeof raw === 'string' && !SURROGATE.test(raw) ? raw : undefined;
    this.#oins.push(oin);
    // The text's bytes (a parsed file's text is well-formed UTF-16, so they are the file's own).
    this.#digests.push(hash('sha256', text, 'buffer'));
    const prepared = this.#preparation ? prepare(this.#preparation, value, this.#count) : '';
    if (this.#preparation) this.#prepared.push(prepared);
    // A prepared tenant is built from what was prepared, and later walks take
    // it over by its OIN: its text need not cross too (a third of the memory).
    // One without an OIN to be taken over by is built from its text by them.
    this.#texts.push(prepared === '' || oin === undefined ? text : '');
    this.#count++;
    if (this.#chunk && this.#texts.length >= this.#perChunk) this.#chunk(this.fields());
    return null;
  }

  /** The tenants reported and not yet handed out, packed (once the parse has succeeded). */
  fields(): PackedTenantFields {
    const packed = pack(this.#texts, this.#oins, this.#digests);
    const prepared = this.#preparation ? { key: this.#preparation.key, texts: packTexts(this.#prepared) } : undefined;
    this.#texts = [];
    this.#oins = [];
    this.#prepared = [];
    this.#digests = [];
    return prepared ? { ...packed, prepared } : packed;
  }
}

/**
 * A tenant prepared, or '' when its preparation failed unexpectedly (a
 * fault, not an issue of the tenant's): the building thread then builds it
 * from its text, and reports whatever that finds.
 */
function prepare(preparation: TenantPreparation, value: unknown, index: number): string {
  try {
    return preparation.text(value, index);
  } catch {
    return '';
  }
}

/** Tenants' texts and OINs packed (see PackedTenantFields). */
function pack(texts: readonly string[], oins: readonly (string | undefined)[], digestList: readonly Buffer[]): PackedTenantFields {
  const digests = new Uint8Array(texts.length * DIGEST_BYTES);
  for (let index = 0; index < texts.length; index++) digests.set(digestList[index]!, index * DIGEST_BYTES);
  return { texts: packTexts(texts), oins: packTexts(oins.map((oin) => oin ?? '')), digests };
}

/** Strings one after the other in UTF-8, in a buffer of their own, and where each ends. */
function packTexts(pieces: readonly string[]): PackedTextFields {
  const ends = new Uint32Array(pieces.length);
  let at = 0;
  for (let index = 0; index < pieces.length; index++) ends[index] = at += Buffer.byteLength(pieces[index] as string, 'utf8');
  // Not Buffer.from(string): a small one comes from the shared pool, whose buffer cannot be transferred.
  const texts = new Uint8Array(at);
  const writer = Buffer.from(texts.buffer);
  at = 0;
  for (const piece of pieces) at += writer.write(piece, at, 'utf8');
  return { texts, ends };
}

/**
 * The elements of another top-level array (the file's `revokedTokens`) as
 * the strict parser reports them, kept as their texts: a list of 100,000
 * revocations handed over as cloned objects took the receiving thread
 * 110-140 ms in one piece, the texts are parsed there one by one, in steps.
 */
export class TextPacker {
  #texts: string[] = [];

  constructor(readonly key: string) {}

  element(_value: unknown, text: string): null {
    this.#texts.push(text);
    return null;
  }

  fields(): PackedTextFields {
    const packed = packTexts(this.#texts);
    this.#texts = [];
    return packed;
  }
}

/** Values handed over as their texts (see TextPacker): read one at a time, exactly as parsed. */
export class PackedTexts {
  readonly length: number;
  readonly #ends: Uint32Array;
  readonly #texts: Buffer;

  constructor(fields: PackedTextFields) {
    this.length = fields.ends.length;
    this.#ends = fields.ends;
    this.#texts = Buffer.from(fields.texts.buffer, fields.texts.byteOffset, fields.texts.byteLength);
  }

  text(index: number): string {
    return this.#texts.toString('utf8', index === 0 ? 0 : this.#ends[index - 1], this.#ends[index]);
  }

  value(index: number): unknown {
    return JSON.parse(this.text(index));
  }
}

/** Packed tenants, read one by one. */
export class PackedTenants implements TenantList {
  readonly length: number;
  readonly #texts: PackedTexts;
  readonly #oins: PackedTexts;
  readonly #digests: Uint8Array;
  readonly #prepared: { readonly key: string; readonly texts: PackedTexts } | undefined;

  constructor(fields: PackedTenantFields) {
    this.#texts = new PackedTexts(fields.texts);
    this.#oins = new PackedTexts(fields.oins);
    this.#digests = fields.digests;
    this.length = this.#texts.length;
    const prepared = fields.prepared;
    if (prepared && prepared.texts.ends.length !== this.length) throw new TypeError('prepared tenants do not match the tenants');
    this.#prepared = prepared ? { key: prepared.key, texts: new PackedTexts(prepared.texts) } : undefined;
  }

  prepared(index: number, key: string): string | undefined {
    const prepared = this.#prepared;
    if (prepared === undefined || prepared.key !== key) return undefined;
    const text = prepared.texts.text(index);
    return text === '' ? undefined : text;
  }

  oin(index: number): string | undefined {
    const oin = this.#oins.text(index);
    return oin === '' ? undefined : oin;
  }

  digest(index: number): string {
    const digests = this.#digests;
    return Buffer.from(digests.buffer, digests.byteOffset + index * DIGEST_BYTES, DIGEST_BYTES).toString('base64');
  }

  document(index: number): unknown {
    const text = this.#texts.text(index);
    // Only a build under other rules than the thread's asks for it: a fault, which fails the build.
    if (text === '') throw new TypeError(`tenant ${index} was handed over validated only, under other rules than this build's`);
    return JSON.parse(text);
  }
}

/**
 * Tenants still arriving, chunk by chunk, from the thread that parses the
 * file (read-in-worker.ts): a build walks them as they come, so that on two
 * cores it runs while the rest of the file is parsed instead of after it.
 * `length` grows; {@link arrival} says when to look again. Complete once the
 * whole file parsed, with the rest of the document; failed (every wait
 * rejects) when it did not: nothing built from the chunks may then be used.
 */
export class StreamedTenants implements TenantList {
  readonly #chunks: PackedTenants[] = [];
  /** The index of each chunk's first tenant. */
  readonly #starts: number[] = [];
  #length = 0;
  /** The chunk last read: a build reads the tenants in order. */
  #current = 0;
  #rest: Record<string, unknown> | undefined;
  #failed: { readonly error: unknown } | undefined;
  #waiting: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;

  get length(): number {
    return this.#length;
  }

  /** More tenants, in document order. */
  add(fields: PackedTenantFields): void {
    if (this.#rest || this.#failed) throw new Error('tenants added after the stream ended');
    const chunk = new PackedTenants(fields);
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#starts.push(this.#length);
    this.#length += chunk.length;
    this.#wake();
  }

  /** The whole file parsed: `rest` is its document, with `tenants` null in its place. */
  finish(rest: Record<string, unknown>): void {
    if (this.#rest || this.#failed) return;
    this.#rest = rest;
    this.#wake();
  }

  /** The file could not be read or parsed after all. */
  fail(error: unknown): void {
    if (this.#rest || this.#failed) return;
    this.#failed = { error };
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error);
  }

  /**
   * Undefined once every tenant is here; otherwise a promise settled when
   * more arrive or the stream ends (rejected when it failed).
   */
  arrival(): Promise<void> | undefined {
    if (this.#failed) return Promise.reject(this.#failed.error);
    if (this.#rest) return undefined;
    if (!this.#waiting) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      this.#waiting = { promise, resolve, reject };
    }
    return this.#waiting.promise;
  }

  /** The document around the tenants, once {@link arrival} says they are all here. */
  rest(): Record<string, unknown> {
    if (!this.#rest) throw new Error('the tenants are still arriving');
    return this.#rest;
  }

  oin(index: number): string | undefined {
    const chunk = this.#at(index);
    return this.#chunks[chunk]!.oin(index - this.#starts[chunk]!);
  }

  digest(index: number): string {
    const chunk = this.#at(index);
    return this.#chunks[chunk]!.digest(index - this.#starts[chunk]!);
  }

  document(index: number): unknown {
    const chunk = this.#at(index);
    return this.#chunks[chunk]!.document(index - this.#starts[chunk]!);
  }

  prepared(index: number, key: string): string | undefined {
    const chunk = this.#at(index);
    return this.#chunks[chunk]!.prepared(index - this.#starts[chunk]!, key);
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve();
  }

  /** The chunk holding tenant `index` (< length). */
  #at(index: number): number {
    if (!(index >= 0 && index < this.#length)) throw new RangeError(`no tenant ${index} (of ${this.#length})`);
    const starts = this.#starts;
    let chunk = this.#current;
    if (index < starts[chunk]! || (chunk + 1 < starts.length && index >= starts[chunk + 1]!)) {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (starts[mid]! <= index) lo = mid;
        else hi = mid - 1;
      }
      chunk = this.#current = lo;
    }
    return chunk;
  }
}

/** A parsed array of tenants, read the same way. */
class ParsedTenants implements TenantList {
  constructor(readonly list: readonly unknown[]) {}

  get length(): number {
    return this.list.length;
  }

  oin(index: number): string | undefined {
    const raw = this.list[index];
    const oin = isRecord(raw) ? raw['oin'] : undefined;
    return typeof oin === 'string' ? oin : undefined;
  }

  digest(index: number): string {
    return digestOfDocument(this.list[index]);
  }

  document(index: number): unknown {
    return this.list[index];
  }
}

/** The document's `tenants` as a list, or undefined when it is neither an array nor packed tenants. */
export function tenantList(value: unknown): TenantList | undefined {
  if (value instanceof PackedTenants || value instanceof StreamedTenants) return value;
  return Array.isArray(value) ? new ParsedTenants(value) : undefined;
}
