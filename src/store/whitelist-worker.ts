/**
 * The thread that reads a large whitelist file (see read-in-worker.ts): it
 * reads and strictly parses the file exactly as the main thread would, then
 * posts the document back with its tenants packed, so that the parsed
 * document never lives on the heap whose pauses stall requests.
 */
import { hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { buffersOf, TenantPacker, TextPacker, type PackedTenantFields, type PackedTextFields, type TenantPreparation } from '../model/packed-tenants.ts';
import { readWhitelistFile, WhitelistFileError } from './read-file.ts';
import type { WorkerAnswer, WorkerChunk, WorkerTask } from './read-in-worker.ts';

const { path, tenantsPerChunk, validation } = workerData as WorkerTask;
const port = parentPort!;

/** Hands a chunk of tenants over as soon as it is parsed: its buffers move, nothing is copied. */
function send(tenants: PackedTenantFields): void {
  const chunk: WorkerChunk = { kind: 'chunk', tenants };
  port.postMessage(chunk, buffersOf(tenants));
}

/** How tenants are validated here, when the task asks: the build's own code, loaded only then. */
async function preparation(): Promise<TenantPreparation | undefined> {
  if (!validation) return undefined;
  const { preparationKey, preparedText } = await import('../model/snapshot.ts');
  const options = { oinPattern: new RegExp(validation.pattern, validation.flags), ...(validation.certificatesConfigured === undefined ? {} : { certificatesConfigured: validation.certificatesConfigured }) };
  return { key: preparationKey(options), text: (value, index) => preparedText(value, index, options) };
}

let answer: WorkerAnswer;
let transfer: ArrayBuffer[] = [];
try {
  // The tenants are packed from their text as the parser reports them, and
  // dropped from the document meanwhile. Its strings die with this thread:
  // no need to copy them off the text.
  const packer = new TenantPacker(tenantsPerChunk === undefined ? undefined : send, tenantsPerChunk, await preparation());
  // The revoked tokens as their texts too: 100,000 cloned entries took the main thread 110-140 ms in one piece.
  const revoked = new TextPacker('revokedTokens');
  let bytes: Buffer | undefined;
  const document = await readWhitelistFile(path, { detached: false, elements: [packer, revoked], read: (read) => (bytes = read) });
  const top = typeof document === 'object' && document !== null && !Array.isArray(document) ? (document as Record<string, unknown>) : undefined;
  // In their own places (null), so the main thread's document keeps the file's field order.
  let revokedTokens: PackedTextFields | undefined;
  if (top && Array.isArray(top['revokedTokens'])) {
    revokedTokens = revoked.fields();
    top['revokedTokens'] = null;
    transfer.push(...buffersOf(revokedTokens));
  }
  // The digest of exactly what was parsed (the store's revision), taken last:
  // the main thread is still building then, so it waits for none of it.
  const extra = { revision: hash('sha256', bytes!, 'hex'), ...(revokedTokens ? { revokedTokens } : {}) };
  if (top && Array.isArray(top['tenants'])) {
    const packed = packer.fields();
    top['tenants'] = null;
    answer = { kind: 'packed', document, tenants: packed, ...extra };
    transfer.push(...buffersOf(packed));
  } else {
    answer = { kind: 'document', document, ...extra };
  }
} catch (error) {
  // Anything else fails the thread, and the main thread refuses the load.
  if (!(error instanceof WhitelistFileError)) throw error;
  answer = { kind: 'refused', message: error.message, refusal: error.refusal };
}
port.postMessage(answer, transfer);
