/**
 * This process's threads as Linux shows them in /proc: their ids and each
 * one's nice value, read by the kernel's own account rather than through
 * the calls that set it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Whether this system names the calling thread in /proc (Linux). */
export const HAS_THREAD_SELF = existsSync('/proc/thread-self');

/** The ids of this process's threads. */
export function threadIds(): number[] {
  return readdirSync(`/proc/${process.pid}/task`).map(Number);
}

/** The nice value of thread `tid` of this process: field 19 of its stat, counted after the parenthesised name. */
export function niceOf(tid: number): number {
  const stat = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The nice value of every thread of this process still there when read, by id. */
export function niceByThread(): Map<number, number> {
  const nice = new Map<number, number>();
  for (const tid of threadIds()) {
    try {
      nice.set(tid, niceOf(tid));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return nice;
}
