/**
 * Lowers the CPU priority of the calling thread only. The thread that reads
 * a large whitelist file competes for the CPU with the main thread, which
 * serves requests: on one CPU, a request waits while the reader runs out its
 * time slice. At a low priority the main thread goes first. Not the lowest
 * (19): measured under a load that kept the main thread busy, a reader at 19
 * got some 1.5 % of the CPU and a 100k-tenant reload took 17-32 s, or did not
 * land within a minute; at 10 it gets about a tenth.
 *
 * Linux only: there setpriority() on a thread id affects that thread alone,
 * and lowering a priority needs no privilege. Elsewhere (or without /proc)
 * the thread simply keeps its priority; nothing here ever throws.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The nice value the reading thread runs at (the main thread's is usually 0). */
export const READER_NICE = 10;

/** The calling thread's kernel id, from /proc/thread-self ("PID/task/TID"); undefined where that does not exist. */
export function currentThreadId(): number | undefined {
  try {
    const match = /^\d+\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gives the calling thread a low CPU priority (READER_NICE); the nice value it then
 * runs at, or undefined when that could not be done (it runs on as it was).
 */
export function lowerThreadPriority(): number | undefined {
  const thread = currentThreadId();
  if (thread === undefined) return undefined;
  try {
    setPriority(thread, READER_NICE);
    return getPriority(thread);
  } catch {
    return undefined;
  }
}
