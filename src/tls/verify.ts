import type { X509Certificate } from 'node:crypto';
import { crlReader, normalSerial, oneLine, type CrlReader, type LoadedCrl } from './crl.ts';
import { CaBundleError } from './errors.ts';
import { certificateOin, type OinProblem } from './oin.ts';
import { certificatesFromPem, parsePem, toPem } from './pem.ts';

/**
 * Why a certificate does not verify. The names follow OpenSSL's verify
 * errors (see `problemOfTlsError`), so that a certificate handed on in a
 * header and one presented to our own TLS listener get the same verdict.
 */
export type CertificateProblem =
  | 'malformed'
  | 'untrusted'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'crl_missing'
  | 'crl_expired'
  | 'crl_not_yet_valid'
  | 'chain_too_long'
  | 'wrong_purpose';

export type ChainVerdict =
  | { readonly ok: true; readonly sha256: string; readonly oin?: string; readonly oinProblem?: OinProblem }
  | { readonly ok: false; readonly reason: CertificateProblem; readonly sha256?: string };

export interface VerifierOptions {
  /** PEM bundle of roots and intermediates. */
  readonly caPem: string;
  /** Names the bundle in errors, e.g. its file path. */
  readonly caSource: string;
  /** PEM file with one or more CRLs, one per issuing CA. */
  readonly crlPem?: string;
  readonly crlSource?: string;
  /**
   * Reads `crlPem`, required with it: crlReader()'s, which loads the ASN.1
   * parser (~230 ms to import) and so is asynchronous. createCertificateVerifier
   * gets it only when there are CRLs.
   */
  readonly readCrls?: CrlReader;
  readonly oinPattern: RegExp;
  /** Certificates in a chain, leaf and root included (default 8). */
  readonly maxChainLength?: number;
  /** Verdicts kept, by leaf and presented chain (default 10,000). */
  readonly cacheSize?: number;
  /** How long a verdict is reused at most (default 60 s); never past a link's notAfter or a CRL's nextUpdate. */
  readonly cacheTtlMs?: number;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/**
 * Signatures checked while building one chain: bounds the work of a hostile
 * chain (many certificates with the issuer's name) while a real one needs
 * one per link. Name matches (checkIssued) are cheap and not counted, so a
 * large bundle never runs out.
 */
const SIGNATURE_BUDGET = 32;

/** Hex SHA-256 of the certificate's DER, as the contract's `x-authenticated-certificate-sha256` wants it. */
export function certificateSha256(certificate: X509Certificate): string {
  return certificate.fingerprint256.replaceAll(':', '').toLowerCase();
}

function timeMs(text: string): number {
  return new Date(text).getTime();
}

function selfIssued(certificate: X509Certificate): boolean {
  return certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey);
}

type Built = { readonly path: readonly X509Certificate[] } | { readonly problem: CertificateProblem };

/**
 * Verifies client certificates that came in a header from a trusted front
 * proxy, the way OpenSSL verifies those presented to our own listener:
 * a chain to a self-signed root of the bundle (intermediates from the
 * bundle or presented), every link a CA that may sign certificates, inside
 * its validity dates and, where it names extended key usages, allowed for
 * client authentication; and with CRLs loaded, every link but the root
 * checked against its issuer's CRL, which must exist and be current
 * (OpenSSL's CRL_CHECK_ALL, which Node turns on with the `crl` option).
 * Built once per CA bundle and CRL file; a new pair of files means a new
 * verifier, so its verdict cache never outlives them.
 */
export class CertificateVerifier {
  /** Number of distinct CA certificates in the bundle. */
  readonly clientCas: number;
  /** The earliest nextUpdate of the CRLs, ms since the epoch; undefined without CRLs. */
  readonly crlNextUpdateMs: number | undefined;
  /** The bundle and the CRLs one PEM string each, for Node's `ca` and `crl` options. */
  readonly caPems: readonly string[];
  readonly crlPems: readonly string[];
  readonly #cas: readonly X509Certificate[];
  readonly #anchors: ReadonlySet<string>;
  readonly #crls: ReadonlyMap<string, LoadedCrl> | undefined;
  readonly #oinPattern: RegExp;
  readonly #maxChainLength: number;
  readonly #cacheSize: number;
  readonly #cacheTtlMs: number;
  readonly #cache = new Map<string, { readonly verdict: ChainVerdict; readonly fromMs: number; readonly untilMs: number }>();

  constructor(options: VerifierOptions) {
    const all = certificatesFromPem(options.caPem, options.caSource);
    const unique = new Map<string, X509Certificate>();
    all.forEach((certificate, index) => {
      if (!certificate.ca) {
        throw new CaBundleError(options.caSource, `certificate ${index + 1} (${oneLine(certificate.subject)}) is not a CA certificate`);
      }
      unique.set(certificate.fingerprint256, certificate);
    });
    this.#cas = [...unique.values()];
    this.#anchors = new Set(this.#cas.filter(selfIssued).map((ca) => ca.fingerprint256));
    if (this.#anchors.size === 0) {
      // Without a root nothing could ever verify, here or in OpenSSL: say so at load.
      throw new CaBundleError(options.caSource, 'holds no self-signed root CA certificate');
    }
    this.clientCas = this.#cas.length;
    this.caPems = this.#cas.map((ca) => ca.toString());
    if (options.crlPem !== undefined) {
      const source = options.crlSource ?? 'CRL';
      const blocks = parsePem(options.crlPem, source, ['X509 CRL']);
      if (options.readCrls === undefined) throw new TypeError('CertificateVerifier: crlPem needs readCrls (createCertificateVerifier gets it)');
      const crls = options.readCrls(blocks.map((block) => block.der), source, this.#cas);
      const byCa = new Map<string, LoadedCrl>();
      for (const crl of crls) for (const issuer of crl.issuers) byCa.set(issuer, crl);
      this.#crls = byCa;
      this.crlPems = blocks.map((block) => toPem(block.der, 'X509 CRL'));
      const next = crls.map((crl) => crl.nextUpdateMs).filter((ms): ms is number => ms !== undefined);
      this.crlNextUpdateMs = next.length > 0 ? Math.min(...next) : undefined;
    } else {
      this.crlPems = [];
      this.crlNextUpdateMs = undefined;
    }
    this.#oinPattern = options.oinPattern;
    this.#maxChainLength = options.maxChainLength ?? 8;
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#cacheTtlMs = options.cacheTtlMs ?? 60_000;
  }

  /** Verdict on `leaf`, with the certificates that came with it as possible intermediates. */
  verifyChain(leaf: X509Certificate, presentedChain: readonly X509Certificate[], nowMs: number): ChainVerdict {
    const key = [leaf, ...presentedChain].map((certificate) => certificate.fingerprint256).join('/');
    const cached = this.#cache.get(key);
    // A verdict holds from when it was made until its end; a clock set back recomputes it.
    if (cached && cached.fromMs <= nowMs && nowMs < cached.untilMs) return cached.verdict;
    const sha256 = certificateSha256(leaf);
    // At most 16 presented certificates are considered, whoever the caller: a longer list cannot help a chain of 8.
    const presented = presentedChain.slice(0, 16).filter((certificate) => certificate.fingerprint256 !== leaf.fingerprint256);
    const budget = { left: SIGNATURE_BUDGET };
    const built = this.#extend([leaf], presented, nowMs, budget);
    let verdict: ChainVerdict;
    let untilMs = nowMs + this.#cacheTtlMs;
    if ('problem' in built) {
      verdict = { ok: false, reason: built.problem, sha256 };
    } else {
      const oin = certificateOin(leaf, this.#oinPattern);
      verdict = oin.ok ? { ok: true, sha256, oin: oin.oin } : { ok: true, sha256, oinProblem: oin.problem };
      untilMs = Math.min(untilMs, this.#validUntil(built.path));
    }
    if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(key, { verdict, fromMs: nowMs, untilMs });
    return verdict;
  }

  /** Depth-first: a bundle CA or presented certificate that issued the last link, until a root of the bundle. */
  #extend(path: readonly X509Certificate[], presented: readonly X509Certificate[], nowMs: number, budget: { left: number }): Built {
    const current = path.at(-1) as X509Certificate;
    if (this.#anchors.has(current.fingerprint256)) {
      const problem = this.#check(path, nowMs);
      return problem ? { problem } : { path };
    }
    if (path.length >= this.#maxChainLength) return { problem: 'chain_too_long' };
    let best: CertificateProblem = 'untrusted';
    for (const candidate of [...this.#cas, ...presented]) {
      if (!candidate.ca || path.some((link) => link.fingerprint256 === candidate.fingerprint256)) continue;
      // checkIssued is OpenSSL's X509_check_issued: names, key identifiers, and keyCertSign when keyUsage is present.
      if (!current.checkIssued(candidate)) continue;
      if (budget.left <= 0) break;
      budget.left -= 1;
      if (!current.verify(candidate.publicKey)) continue;
      const built = this.#extend([...path, candidate], presented, nowMs, budget);
      if ('path' in built) return built;
      // A chain that was found but failed a check says more than "no issuer".
      if (best === 'untrusted' || best === 'chain_too_long') best = built.problem;
    }
    return { problem: best };
  }

  /** Dates, purpose and revocation of a complete path, leaf first, root last. */
  #check(path: readonly X509Certificate[], nowMs: number): CertificateProblem | undefined {
    for (const link of path) {
      if (nowMs < timeMs(link.validFrom)) return 'not_yet_valid';
      if (nowMs > timeMs(link.validTo)) return 'expired';
    }
    for (const link of path.slice(0, -1)) {
      const usages = link.keyUsage; // Node's name for the extended key usages; undefined when absent
      if (usages && !usages.includes(CLIENT_AUTH) && !usages.includes(ANY_EXTENDED_KEY_USAGE)) return 'wrong_purpose';
    }
    if (!this.#crls) return undefined;
    for (let index = 0; index < path.length - 1; index += 1) {
      const link = path[index] as X509Certificate;
      const crl = this.#crls.get((path[index + 1] as X509Certificate).fingerprint256);
      // Fail closed like OpenSSL: with CRLs configured, a link whose issuer has none, or only a stale one, is refused.
      if (!crl) return 'crl_missing';
      if (nowMs < crl.thisUpdateMs) return 'crl_not_yet_valid';
      if (crl.nextUpdateMs !== undefined && nowMs > crl.nextUpdateMs) return 'crl_expired';
      if (crl.revoked.has(normalSerial(link.serialNumber))) return 'revoked';
    }
    return undefined;
  }

  #validUntil(path: readonly X509Certificate[]): number {
    let until = Math.min(...path.map((link) => timeMs(link.validTo)));
    if (this.#crls) {
      for (const link of path.slice(1)) {
        const next = this.#crls.get(link.fingerprint256)?.nextUpdateMs;
        if (next !== undefined) until = Math.min(until, next);
      }
    }
    return until;
  }
}

/**
 * Builds a verifier from a CA bundle and optional CRLs, loading the CRL
 * reader only for CRLs; rejects with PemError, CaBundleError or CrlError
 * naming the file.
 */
export async function createCertificateVerifier(options: VerifierOptions): Promise<CertificateVerifier> {
  if (options.crlPem === undefined || options.readCrls !== undefined) return new CertificateVerifier(options);
  return new CertificateVerifier({ ...options, readCrls: await crlReader() });
}

/**
 * OpenSSL's verify error (Node's `socket.authorizationError`) as a
 * CertificateProblem, so both paths log and decide alike.
 */
export function problemOfTlsError(code: string | Error | null | undefined): CertificateProblem {
  const name = typeof code === 'string' ? code : ((code as NodeJS.ErrnoException | undefined)?.code ?? String(code?.message ?? ''));
  switch (name) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'CERT_REVOKED':
      return 'revoked';
    case 'UNABLE_TO_GET_CRL':
      return 'crl_missing';
    case 'CRL_HAS_EXPIRED':
      return 'crl_expired';
    case 'CRL_NOT_YET_VALID':
      return 'crl_not_yet_valid';
    case 'CERT_CHAIN_TOO_LONG':
      return 'chain_too_long';
    case 'INVALID_PURPOSE':
      return 'wrong_purpose';
    default:
      return 'untrusted';
  }
}
