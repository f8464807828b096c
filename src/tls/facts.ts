import type { HeaderOptions, HeaderProblem } from './header.ts';
import { parseClientCertHeader } from './header.ts';
import type { OinProblem } from './oin.ts';
import type { CertificateProblem, CertificateVerifier, ChainVerdict } from './verify.ts';

/**
 * What the decision needs to know about a request's client certificate,
 * whichever way it came (our TLS listener or a trusted proxy's header).
 * `reason` is the contract's precise reason for the log and metrics,
 * `detail` says more (which check failed), for the log only.
 */
export interface CertificateFacts {
  readonly presented: boolean;
  readonly verified: boolean;
  /** Only for a verified certificate whose serialNumber is a single value of the OIN's form. */
  readonly oin?: string;
  /** Hex SHA-256 of the DER leaf, whenever one was presented and parsed. */
  readonly sha256?: string;
  readonly reason?: 'certificate_invalid' | 'certificate_no_oin';
  readonly detail?: CertificateProblem | OinProblem | HeaderProblem;
}

export const NO_CERTIFICATE: CertificateFacts = Object.freeze({ presented: false, verified: false });

/** Facts of a verdict on a presented certificate. */
export function factsOfVerdict(verdict: ChainVerdict): CertificateFacts {
  if (!verdict.ok) {
    return { presented: true, verified: false, reason: 'certificate_invalid', detail: verdict.reason, ...(verdict.sha256 ? { sha256: verdict.sha256 } : {}) };
  }
  if (verdict.oin === undefined) {
    return { presented: true, verified: true, sha256: verdict.sha256, reason: 'certificate_no_oin', ...(verdict.oinProblem ? { detail: verdict.oinProblem } : {}) };
  }
  return { presented: true, verified: true, sha256: verdict.sha256, oin: verdict.oin };
}

/**
 * Facts of a client-certificate header from a trusted proxy. The caller
 * decides trust: from any other peer the header must not be passed here.
 */
export function factsOfHeader(
  value: string | readonly string[] | undefined,
  verifier: CertificateVerifier,
  nowMs: number,
  options: HeaderOptions = {},
): CertificateFacts {
  const parsed = parseClientCertHeader(value, options);
  if (parsed.kind === 'absent') return NO_CERTIFICATE;
  if (parsed.kind === 'invalid') return { presented: true, verified: false, reason: 'certificate_invalid', detail: parsed.problem };
  return factsOfVerdict(verifier.verifyChain(parsed.leaf, parsed.chain, nowMs));
}
