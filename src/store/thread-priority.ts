/**
 * Lowers the CPU priority of the calling thread only. The thread that reads
 * a large whitelist file competes for the CPU with the main thread, which
 * serves requests: on one CPU, a request waits while the reader runs out its
 * time slice. At the lowest priority the reader runs on what the main thread
 * leaves.
 *
 * Linux only: there setpriority() on a thread id affects that thread alone,
 * and lowering a priority needs no privilege. Elsewhere (or without /proc)
 * the thread simply keeps its priority; nothing here ever throws.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The lowest priority (the highest nice value) there is. */
export const LOWEST_PRIORITY = 19;

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
 * Gives the calling thread the lowest CPU priority; the nice value it then
 * runs at, or undefined when that could not be done (it runs on as it was).
 */
export function lowerThreadPriority(): number | undefined {
  const thread = currentThreadId();
  if (thread === undefined) return undefined;
  try {
    setPriority(thread, LOWEST_PRIORITY);
    return getPriority(thread);
  } catch {
    return undefined;
  }
}
