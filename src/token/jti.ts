/** The `jti` of a token `oingate token` mints (contract §10). */
import { randomBytes } from 'node:crypto';

/** Bytes of randomness in a minted jti: 136 bits, 23 base64url characters. */
const JTI_BYTES = 17;

/**
 * A fresh jti that does not start with '-': a command line reads
 * `--jti -x…` as a missing value. Redrawing those costs 0.05 of the 136 bits.
 */
export function newJti(): string {
  for (;;) {
    const jti = randomBytes(JTI_BYTES).toString('base64url');
    if (!jti.startsWith('-')) return jti;
  }
}
