import type { AsnConvert } from '@peculiar/asn1-schema';
import type { Certificate, CertificateList } from '@peculiar/asn1-x509';
import { verify as verifySignature, type X509Certificate } from 'node:crypto';
import { CrlError } from './errors.ts';

/** A CRL checked at load and bound to the bundle CA(s) that signed it. */
export interface LoadedCrl {
  /** Position in the CRL file, from 1, for messages. */
  readonly position: number;
  /** fingerprint256 of every bundle CA whose name and key issued it. */
  readonly issuers: readonly string[];
  readonly issuerSubject: string;
  readonly thisUpdateMs: number;
  /** Absent when the CRL names no next update. */
  readonly nextUpdateMs: number | undefined;
  /** Revoked serial numbers, upper-case hex without leading zeros. */
  readonly revoked: ReadonlySet<string>;
}

/** The signature algorithms a CRL may use, by OID; SHA-1 and RSA-PSS are refused at load. */
const SIGNATURE_HASHES = new Map<string, string | null>([
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.3.101.112', null],
]);

/** Serial numbers as X509Certificate.serialNumber gives them, minus leading zeros, so both sides compare. */
export function normalSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

/** The ASN.1 parser, loaded by crlReader. */
interface Asn1 {
  readonly AsnConvert: typeof AsnConvert;
  readonly Certificate: typeof Certificate;
  readonly CertificateList: typeof CertificateList;
}

/** Reads the CRLs of a file against the CA bundle: loadCrls, the parser loaded. */
export type CrlReader = (ders: readonly Buffer[], source: string, cas: readonly X509Certificate[]) => LoadedCrl[];

/**
 * The CRL reader. Only CRLs need @peculiar/asn1-x509, which takes ~230 ms to
 * import: it is loaded by the first call, never by a start without CRLs,
 * and a missing one fails the load of the CRL file.
 */
export async function crlReader(): Promise<CrlReader> {
  const [schema, x509] = await Promise.all([import('@peculiar/asn1-schema'), import('@peculiar/asn1-x509')]);
  const asn1: Asn1 = { AsnConvert: schema.AsnConvert, Certificate: x509.Certificate, CertificateList: x509.CertificateList };
  return (ders, source, cas) => loadCrls(asn1, ders, source, cas);
}

function subjectDer({ AsnConvert, Certificate }: Asn1, certificate: X509Certificate, source: string): Buffer {
  try {
    const parsed = AsnConvert.parse(certificate.raw, Certificate);
    return Buffer.from(AsnConvert.serialize(parsed.tbsCertificate.subject));
  } catch {
    throw new CrlError(source, `the name of CA ${oneLine(certificate.subject)} cannot be read to match CRLs`);
  }
}

/**
 * Parses and checks the CRLs of a file against the CA bundle. Node has no
 * CRL parser, so the structure comes from @peculiar/asn1-x509; the signature
 * is verified with node:crypto over `tbsCertListRaw`, the TBS bytes exactly
 * as they stand in the file (re-serialising the parsed structure could
 * differ from what was signed, and would then verify something else).
 *
 * Refused: a CRL that does not parse, whose inner and outer signature
 * algorithms differ, that no bundle CA of its issuer name signed, that has a
 * critical extension (a delta or partitioned CRL would be misread as
 * complete), or a second CRL for a CA that already has one.
 */
function loadCrls(asn1: Asn1, ders: readonly Buffer[], source: string, cas: readonly X509Certificate[]): LoadedCrl[] {
  const { AsnConvert, CertificateList } = asn1;
  const names = cas.map((ca) => ({ ca, name: subjectDer(asn1, ca, source) }));
  const taken = new Map<string, number>();
  return ders.map((der, index) => {
    const position = index + 1;
    let crl: CertificateList;
    try {
      crl = AsnConvert.parse(der, CertificateList);
    } catch {
      throw new CrlError(source, `CRL ${position} is not a valid X.509 CRL`);
    }
    const tbs = crl.tbsCertList;
    const algorithm = crl.signatureAlgorithm.algorithm;
    if (!crl.tbsCertListRaw || !Buffer.from(AsnConvert.serialize(tbs.signature)).equals(Buffer.from(AsnConvert.serialize(crl.signatureAlgorithm)))) {
      throw new CrlError(source, `CRL ${position}: inner and outer signature algorithms differ`);
    }
    const hash = SIGNATURE_HASHES.get(algorithm);
    if (hash === undefined) throw new CrlError(source, `CRL ${position}: signature algorithm ${algorithm} is not supported`);
    const critical = tbs.crlExtensions?.find((extension) => extension.critical);
    if (critical) throw new CrlError(source, `CRL ${position}: critical extension ${critical.extnID} is not supported`);

    const issuerName = Buffer.from(AsnConvert.serialize(tbs.issuer));
    const signed = Buffer.from(crl.tbsCertListRaw);
    const signature = Buffer.from(crl.signature);
    const issuers = names
      .filter(({ ca, name }) => name.equals(issuerName) && signedBy(hash, signed, ca, signature))
      .map(({ ca }) => ca);
    if (issuers.length === 0) {
      throw new CrlError(source, `CRL ${position} is not signed by any CA of the bundle with its issuer name`);
    }
    for (const issuer of issuers) {
      const earlier = taken.get(issuer.fingerprint256);
      if (earlier !== undefined) throw new CrlError(source, `CRLs ${earlier} and ${position} are from the same CA (${oneLine(issuer.subject)})`);
      taken.set(issuer.fingerprint256, position);
    }
    const revoked = new Set<string>();
    for (const entry of tbs.revokedCertificates ?? []) {
      const critical = entry.crlEntryExtensions?.find((extension) => extension.critical);
      // A certificateIssuer entry extension (indirect CRL) would name another CA's certificates.
      if (critical) throw new CrlError(source, `CRL ${position}: critical entry extension ${critical.extnID} is not supported`);
      revoked.add(normalSerial(Buffer.from(entry.userCertificate).toString('hex')));
    }
    return {
      position,
      issuers: issuers.map((issuer) => issuer.fingerprint256),
      issuerSubject: oneLine((issuers[0] as X509Certificate).subject),
      thisUpdateMs: tbs.thisUpdate.getTime().getTime(),
      nextUpdateMs: tbs.nextUpdate?.getTime().getTime(),
      revoked,
    };
  });
}

function signedBy(hash: string | null, data: Buffer, ca: X509Certificate, signature: Buffer): boolean {
  try {
    return verifySignature(hash, data, ca.publicKey, signature);
  } catch {
    return false; // a key of another type than the algorithm names
  }
}

/** A distinguished name on one line, for messages. */
export function oneLine(name: string): string {
  return name.replace(/\n/g, ', ');
}
