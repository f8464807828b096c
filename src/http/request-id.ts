import { randomUUID } from 'node:crypto';

// Visible ASCII only: an id echoed into logs and headers must not carry
// spaces, control characters or anything a log parser could split on.
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The caller's x-request-id when it is a sane token, else a fresh one. */
export function requestIdFor(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
