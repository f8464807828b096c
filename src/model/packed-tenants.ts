/**
 * A whitelist's tenants handed over from the thread that parsed the file:
 * per tenant its JSON text, its OIN and the digest of its document, packed
 * into a few typed arrays. Handing those to another thread moves their
 * buffers, where a clone of the parsed tenants would build 100,000 object
 * graphs on the receiving heap; and a tenant is parsed
 * only when it is asked for, so one taken over from the enforced snapshot by
 * its digest is never parsed at all. Pure: no I/O.
 */
import { DIGEST_BYTES, digestBytesOfDocument, digestOfDocument } from './document-digest.ts';

/** The tenants list as buildSnapshot walks it: a parsed array, or tenants packed by another thread. */
export interface TenantList {
  readonly length: number;
  /** The tenant's OIN, when its document is an object whose `oin` is a string. */
  oin(index: number): string | undefined;
  /** digestOfDocument of the tenant's document ('' for one never to be taken over). */
  digest(index: number): string;
  /** The tenant's document, exactly as parsed. */
  document(index: number): unknown;
}

/**
 * What crosses the thread boundary: typed arrays only, whose buffers are
 * transferred, so that nothing of the size of the file is copied or
 * deserialized on the receiving thread (a 19 MiB string took 30-60 ms there).
 */
export interface PackedTenantFields {
  /** Every tenant's JSON text in UTF-8, one after the other. */
  readonly texts: Uint8Array;
  /** Where each tenant's text ends in `texts` (empty for a tenant in `values`). */
  readonly textEnds: Uint32Array;
  /** Every string OIN in UTF-8, one after the other. */
  readonly oins: Uint8Array;
  readonly oinEnds: Uint32Array;
  /** DIGEST_BYTES per tenant, meaningful where flagged. */
  readonly digests: Uint8Array;
  readonly flags: Uint8Array;
  /** Tenants whose JSON text would not give back the same value (an infinite number, -0), by index. */
  readonly values: ReadonlyMap<number, unknown>;
}

const HAS_OIN = 1;
const HAS_DIGEST = 2;
const AS_VALUE = 4;

const SURROGATE = /[\ud800-\udfff]/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether JSON.parse(JSON.stringify(value)) is value again: JSON keeps neither -0 nor an infinite number. */
function survivesText(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value) && !Object.is(value, -0);
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!survivesText(value[i])) return false;
    return true;
  }
  for (const key in value) if (!survivesText((value as Record<string, unknown>)[key])) return false;
  return true;
}

/** Packs parsed tenants (strict JSON values: no depth beyond the parser's limit) for another thread. */
export function packTenants(list: readonly unknown[]): PackedTenantFields {
  const count = list.length;
  const texts: string[] = [];
  const oins: string[] = [];
  const textEnds = new Uint32Array(count);
  const oinEnds = new Uint32Array(count);
  const digests = new Uint8Array(count * DIGEST_BYTES);
  const flags = new Uint8Array(count);
  const values = new Map<number, unknown>();
  let textAt = 0;
  let oinAt = 0;
  for (let index = 0; index < count; index++) {
    const raw = list[index];
    let flag = 0;
    const oin = isRecord(raw) ? raw['oin'] : undefined;
    // An OIN UTF-8 cannot carry exactly (a lone surrogate) is left out: that tenant is built, never taken over.
    if (typeof oin === 'string' && !SURROGATE.test(oin)) {
      oins.push(oin);
      oinAt += Buffer.byteLength(oin, 'utf8');
      flag |= HAS_OIN;
    }
    oinEnds[index] = oinAt;
    const text = JSON.stringify(raw);
    const digest = digestBytesOfDocument(raw, text);
    if (digest) {
      digests.set(digest, index * DIGEST_BYTES);
      flag |= HAS_DIGEST;
    }
    if (survivesText(raw)) {
      texts.push(text);
      textAt += Buffer.byteLength(text, 'utf8');
    } else {
      values.set(index, raw);
      flag |= AS_VALUE;
    }
    textEnds[index] = textAt;
    flags[index] = flag;
  }
  return { texts: utf8(texts, textAt), textEnds, oins: utf8(oins, oinAt), oinEnds, digests, flags, values };
}

/** The pieces' UTF-8 one after the other, in a buffer of its own. */
function utf8(pieces: readonly string[], bytes: number): Uint8Array {
  // Not Buffer.from(string): a small one comes from the shared pool, whose buffer cannot be transferred.
  const out = new Uint8Array(bytes);
  const writer = Buffer.from(out.buffer);
  let at = 0;
  for (const piece of pieces) at += writer.write(piece, at, 'utf8');
  return out;
}

/** Packed tenants, read one by one. */
export class PackedTenants implements TenantList {
  readonly length: number;
  readonly #fields: PackedTenantFields;
  readonly #texts: Buffer;
  readonly #oins: Buffer;

  constructor(fields: PackedTenantFields) {
    this.#fields = fields;
    this.length = fields.flags.length;
    this.#texts = Buffer.from(fields.texts.buffer, fields.texts.byteOffset, fields.texts.byteLength);
    this.#oins = Buffer.from(fields.oins.buffer, fields.oins.byteOffset, fields.oins.byteLength);
  }

  oin(index: number): string | undefined {
    const { flags, oinEnds } = this.#fields;
    if (!((flags[index] as number) & HAS_OIN)) return undefined;
    return this.#oins.toString('utf8', index === 0 ? 0 : oinEnds[index - 1], oinEnds[index]);
  }

  digest(index: number): string {
    const { flags, digests } = this.#fields;
    if (!((flags[index] as number) & HAS_DIGEST)) return '';
    return Buffer.from(digests.buffer, digests.byteOffset + index * DIGEST_BYTES, DIGEST_BYTES).toString('base64');
  }

  document(index: number): unknown {
    const { flags, textEnds, values } = this.#fields;
    if ((flags[index] as number) & AS_VALUE) return values.get(index);
    return JSON.parse(this.#texts.toString('utf8', index === 0 ? 0 : textEnds[index - 1], textEnds[index]));
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
  if (value instanceof PackedTenants) return value;
  return Array.isArray(value) ? new ParsedTenants(value) : undefined;
}
