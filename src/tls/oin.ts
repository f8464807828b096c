import type { X509Certificate } from 'node:crypto';

/** Why a certificate yields no OIN: no serialNumber, more than one, or one not of the OIN's form. */
export type OinProblem = 'absent' | 'ambiguous' | 'pattern';

export type CertificateOin = { readonly ok: true; readonly oin: string } | { readonly ok: false; readonly problem: OinProblem };

/**
 * The OIN of a certificate: its Subject serialNumber attribute (OID
 * 2.5.4.5), as PKIoverheid certificates carry it.
 *
 * Read from `toLegacyObject().subject`, which Node builds from the name's
 * entries one by one (multi-valued RDNs flattened, values unescaped, a
 * repeated attribute as an array), rather than from the `subject` string,
 * whose RFC 2253 escaping and ` + ` joins of multi-valued RDNs would have to
 * be undone by hand. A name with two serialNumber attributes is refused: a
 * verifier elsewhere could pick the other one.
 */
export function certificateOin(certificate: X509Certificate, oinPattern: RegExp): CertificateOin {
  const subject = certificate.toLegacyObject().subject as unknown as Record<string, unknown> | undefined;
  const value = subject?.['serialNumber'];
  if (value === undefined) return { ok: false, problem: 'absent' };
  if (typeof value !== 'string') return { ok: false, problem: 'ambiguous' };
  // A pattern with the global or sticky flag would carry lastIndex from one certificate to the next.
  oinPattern.lastIndex = 0;
  if (!oinPattern.test(value)) return { ok: false, problem: 'pattern' };
  return { ok: true, oin: value };
}
