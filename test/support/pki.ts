/**
 * Test PKI, made with the openssl CLI in a temporary directory once per test
 * run (EC P-256 keys, so it takes well under a second): a root, an
 * intermediate under it, client certificates from the intermediate (with and
 * without an OIN, expired, revoked), one from an unrelated CA, and server
 * certificates for 127.0.0.1 and localhost. `openssl ca` is used because it
 * can back-date certificates and write CRLs.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PKI_OIN_A = '00000001000000000001';
export const PKI_OIN_B = '00000001000000000002';

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

export interface Pki {
  readonly dir: string;
  /** Root then intermediate, PEM. */
  readonly caBundle: string;
  readonly caBundleFile: string;
  readonly root: Issued;
  readonly intermediate: Issued;
  /** A root the bundle does not hold, and its own CRL. */
  readonly unrelatedRoot: Issued;
  /** The root's CRL (revokes nothing) first, then the intermediate's (revokes `revoked`). */
  readonly crl: string;
  readonly crlFile: string;
  /** The intermediate's CRL alone: the root's is missing. */
  readonly intermediateCrl: string;
  readonly rootCrl: string;
  /** The intermediate's CRL before `revoked` was revoked. */
  readonly intermediateCrlBefore: string;
  /** Root and intermediate CRLs whose nextUpdate has passed. */
  readonly staleCrl: string;
  readonly unrelatedCrl: string;
  readonly clients: {
    /** serialNumber = PKI_OIN_A */
    readonly valid: Issued;
    /** serialNumber = PKI_OIN_B, in a multi-valued RDN with O */
    readonly validB: Issued;
    readonly noOin: Issued;
    /** serialNumber that does not match ^[0-9]{20}$ */
    readonly badOin: Issued;
    /** two serialNumber attributes */
    readonly twoOins: Issued;
    readonly expired: Issued;
    readonly revoked: Issued;
    /** from the unrelated root, serialNumber = PKI_OIN_A */
    readonly unrelated: Issued;
    /** self-signed, serialNumber = PKI_OIN_A */
    readonly selfSigned: Issued;
  };
  /** An RSA root (as PKIoverheid's are), a client of it, and its CRL revoking `revoked`. */
  readonly rsa: { readonly root: Issued; readonly client: Issued; readonly revoked: Issued; readonly crl: string };
  /** Two server pairs for 127.0.0.1 and localhost, issued by the root. */
  readonly server: Issued;
  readonly server2: Issued;
}

const CONFIG = `
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 7
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

async function openssl(cwd: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd });
}

/** A CA directory as `openssl ca` wants it. */
async function caDir(base: string, name: string): Promise<string> {
  const dir = join(base, name);
  await mkdir(join(dir, 'newcerts'), { recursive: true });
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), `${(0x100000 + Math.floor(Math.random() * 0xeffff)).toString(16)}\n`);
  await writeFile(join(dir, 'crlnumber'), '1000\n');
  await writeFile(join(dir, 'ca.cnf'), CONFIG);
  return dir;
}

async function newKey(file: string, rsa = false): Promise<void> {
  const algorithm = rsa ? ['RSA', '-pkeyopt', 'rsa_keygen_bits:2048'] : ['EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await run('openssl', ['genpkey', '-algorithm', ...algorithm, '-out', file]);
}

async function issued(certFile: string, keyFile: string): Promise<Issued> {
  return { certFile, keyFile, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

async function selfSignedCa(dir: string, subject: string, extensions = 'v3_ca', rsa = false): Promise<Issued> {
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.pem');
  await newKey(keyFile, rsa);
  await openssl(dir, ['req', '-config', 'ca.cnf', '-new', '-x509', '-key', keyFile, '-out', certFile, '-days', '3650',
    '-multivalue-rdn', '-subj', subject, '-extensions', extensions]);
  return issued(certFile, keyFile);
}

interface SignOptions {
  readonly extensions: string;
  readonly start?: string;
  readonly end?: string;
}

/** Key, request and certificate `name` issued by the CA in `ca` (serially: `openssl ca` keeps a database). */
async function sign(ca: string, out: string, name: string, subject: string, options: SignOptions): Promise<Issued> {
  const keyFile = join(out, `${name}.key`);
  const csr = join(out, `${name}.csr`);
  const certFile = join(out, `${name}.pem`);
  await newKey(keyFile);
  await openssl(ca, ['req', '-config', 'ca.cnf', '-new', '-key', keyFile, '-out', csr, '-multivalue-rdn', '-subj', subject]);
  await openssl(ca, ['ca', '-batch', '-config', 'ca.cnf', '-notext', '-preserveDN', '-multivalue-rdn', '-keyfile', 'ca.key',
    '-cert', 'ca.pem', '-extensions', options.extensions, '-in', csr, '-out', certFile,
    ...(options.start ? ['-startdate', options.start] : []), ...(options.end ? ['-enddate', options.end] : [])]);
  return issued(certFile, keyFile);
}

async function crl(ca: string, file: string, extra: string[] = []): Promise<string> {
  await openssl(ca, ['ca', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-gencrl', '-out', file, ...extra]);
  return readFile(file, 'utf8');
}

async function build(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'oingate-pki-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out');
  await mkdir(out);
  const [rootDir, interDir, otherDir, rsaDir] = await Promise.all(['root', 'intermediate', 'unrelated', 'rsa'].map((name) => caDir(dir, name)));
  const [root, unrelatedRoot] = await Promise.all([
    selfSignedCa(rootDir!, '/C=NL/O=oingate test/CN=Test Root'),
    selfSignedCa(otherDir!, '/C=NL/O=elsewhere/CN=Unrelated Root'),
  ]);
  const intermediate = await sign(rootDir!, interDir!, 'ca', '/C=NL/O=oingate test/CN=Test Intermediate', { extensions: 'v3_ca' });
  const client = { extensions: 'v3_client' };
  const server = { extensions: 'v3_server' };

  const [rootSide, interSide, unrelated, rsa] = await Promise.all([
    (async () => {
      const first = await sign(rootDir!, out, 'server', '/CN=localhost', server);
      const second = await sign(rootDir!, out, 'server2', '/CN=localhost', server);
      const rootCrl = await crl(rootDir!, join(out, 'root-crl.pem'));
      const staleRoot = await crl(rootDir!, join(out, 'root-stale-crl.pem'),
        ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200108000000Z']);
      return { server: first, server2: second, rootCrl, staleRoot };
    })(),
    (async () => {
      const valid = await sign(interDir!, out, 'valid', `/C=NL/O=Tenant A/serialNumber=${PKI_OIN_A}/CN=tenant a`, client);
      const validB = await sign(interDir!, out, 'valid-b', `/C=NL/O=Tenant B+serialNumber=${PKI_OIN_B}/CN=tenant b`, client);
      const noOin = await sign(interDir!, out, 'no-oin', '/C=NL/O=Nobody/CN=no oin', client);
      const badOin = await sign(interDir!, out, 'bad-oin', '/C=NL/serialNumber=ABC-123/CN=bad oin', client);
      const twoOins = await sign(interDir!, out, 'two-oins', `/serialNumber=${PKI_OIN_A}/serialNumber=${PKI_OIN_B}/CN=two`, client);
      const expired = await sign(interDir!, out, 'expired', `/serialNumber=${PKI_OIN_A}/CN=expired`,
        { ...client, start: '20200101000000Z', end: '20210101000000Z' });
      const revoked = await sign(interDir!, out, 'revoked', `/serialNumber=${PKI_OIN_A}/CN=revoked`, client);
      const before = await crl(interDir!, join(out, 'inter-crl-before.pem'));
      await openssl(interDir!, ['ca', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-revoke', revoked.certFile]);
      const interCrl = await crl(interDir!, join(out, 'inter-crl.pem'));
      const staleInter = await crl(interDir!, join(out, 'inter-stale-crl.pem'),
        ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200108000000Z']);
      return { valid, validB, noOin, badOin, twoOins, expired, revoked, before, interCrl, staleInter };
    })(),
    (async () => {
      const cert = await sign(otherDir!, out, 'unrelated', `/serialNumber=${PKI_OIN_A}/CN=unrelated`, client);
      const otherCrl = await crl(otherDir!, join(out, 'unrelated-crl.pem'));
      return { cert, otherCrl };
    })(),
    (async () => {
      const rsaRoot = await selfSignedCa(rsaDir!, '/C=NL/O=oingate test/CN=Test RSA Root', 'v3_ca', true);
      const rsaClient = await sign(rsaDir!, out, 'rsa-client', `/serialNumber=${PKI_OIN_A}/CN=rsa client`, client);
      const rsaRevoked = await sign(rsaDir!, out, 'rsa-revoked', `/serialNumber=${PKI_OIN_A}/CN=rsa revoked`, client);
      await openssl(rsaDir!, ['ca', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-revoke', rsaRevoked.certFile]);
      const rsaCrl = await crl(rsaDir!, join(out, 'rsa-crl.pem'));
      return { root: rsaRoot, client: rsaClient, revoked: rsaRevoked, crl: rsaCrl };
    })(),
  ]);
  const selfSignedDir = await caDir(dir, 'self');
  const selfSigned = await selfSignedCa(selfSignedDir, `/serialNumber=${PKI_OIN_A}/CN=self`, 'v3_client');

  const caBundle = root.cert + intermediate.cert;
  const caBundleFile = join(out, 'ca-bundle.pem');
  await writeFile(caBundleFile, caBundle);
  const crlText = rootSide.rootCrl + interSide.interCrl;
  const crlFile = join(out, 'crl.pem');
  await writeFile(crlFile, crlText);
  return {
    dir,
    caBundle,
    caBundleFile,
    root,
    intermediate,
    unrelatedRoot,
    crl: crlText,
    crlFile,
    intermediateCrl: interSide.interCrl,
    rootCrl: rootSide.rootCrl,
    intermediateCrlBefore: interSide.before,
    staleCrl: rootSide.staleRoot + interSide.staleInter,
    unrelatedCrl: unrelated.otherCrl,
    clients: {
      valid: interSide.valid,
      validB: interSide.validB,
      noOin: interSide.noOin,
      badOin: interSide.badOin,
      twoOins: interSide.twoOins,
      expired: interSide.expired,
      revoked: interSide.revoked,
      unrelated: unrelated.cert,
      selfSigned,
    },
    rsa,
    server: rootSide.server,
    server2: rootSide.server2,
  };
}

let pki: Promise<Pki> | undefined;

/** The test PKI, made once per test run. */
export function testPki(): Promise<Pki> {
  pki ??= build();
  return pki;
}
