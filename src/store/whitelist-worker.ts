/**
 * The thread that reads a large whitelist file (see read-in-worker.ts): it
 * reads and strictly parses the file exactly as the main thread would, then
 * posts the document back with its tenants packed, so that the parsed
 * document never lives on the heap whose pauses stall requests.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TenantPacker } from '../model/packed-tenants.ts';
import { readWhitelistFile, WhitelistFileError } from './read-file.ts';
import type { WorkerAnswer, WorkerTask } from './read-in-worker.ts';

const { path } = workerData as WorkerTask;
const port = parentPort!;

let answer: WorkerAnswer;
let transfer: ArrayBuffer[] = [];
try {
  // The tenants are packed from their text as the parser reports them, and
  // dropped from the document meanwhile. Its strings die with this thread:
  // no need to copy them off the text.
  const packer = new TenantPacker();
  const document = await readWhitelistFile(path, { detached: false, elements: packer });
  const tenants = typeof document === 'object' && document !== null && !Array.isArray(document) ? (document as Record<string, unknown>)['tenants'] : undefined;
  if (Array.isArray(tenants)) {
    const packed = packer.fields();
    // In its own place, so the main thread's document keeps the file's field order.
    (document as Record<string, unknown>)['tenants'] = null;
    answer = { kind: 'packed', document, tenants: packed };
    transfer = [packed.texts, packed.textEnds, packed.oins, packed.oinEnds, packed.digests].map((array) => array.buffer as ArrayBuffer);
  } else {
    answer = { kind: 'document', document };
  }
} catch (error) {
  // Anything else fails the thread, and the main thread refuses the load.
  if (!(error instanceof WhitelistFileError)) throw error;
  answer = { kind: 'refused', message: error.message, refusal: error.refusal };
}
port.postMessage(answer, transfer);
