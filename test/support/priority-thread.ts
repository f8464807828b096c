/**
 * A worker thread's entry (through src/store/ts-worker.mjs): lowers its own
 * priority, answers what it got, and stays until told to stop, so the main
 * thread can look at it meanwhile.
 */
import { parentPort } from 'node:worker_threads';
import { currentThreadId, lowerThreadPriority } from '../../src/store/thread-priority.ts';

const port = parentPort!;
port.postMessage({ thread: currentThreadId(), nice: lowerThreadPriority() });
port.once('message', () => port.close());
