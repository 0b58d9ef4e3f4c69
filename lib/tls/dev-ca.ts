import { webcrypto, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A development certificate authority: a CA and the certificates of the
 * nodes and clients it vouches for, for running a cluster on one's own
 * machines. X.509 is built by @peculiar/x509 (on Node's WebCrypto), never by
 * hand. Keys are ECDSA P-256: fast to make, and small handshakes.
 * Production clusters should bring certificates from their own CA; the
 * nodes accept any CA's, as long as every certificate is signed by it.
 */

export interface Pem {
  cert: string;
  key: string;
}

/** The library's own names for WebCrypto's key types (this project compiles without the DOM's). */
type LibKeyPair = Parameters<typeof import('@peculiar/x509').X509CertificateGenerator.createSelfSigned>[0]['keys'];

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** The library, loaded on first use: its dependency injection needs the reflect-metadata polyfill, which only this module loads. */
async function x509(): Promise<typeof import('@peculiar/x509')> {
  await import('reflect-metadata');
  const lib = await import('@peculiar/x509');
  lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
  return lib;
}

function serial(): string {
  // Positive (top bit clear) and unique enough for a development CA.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`;
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new TypeError(`a certificate name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(name)}`);
  }
}

/** A self-signed CA certificate and its key. */
export async function createDevCa(options: { name?: string; days?: number } = {}): Promise<Pem> {
  const name = options.name ?? 'actor-raft development CA';
  const lib = await x509();
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [name] }],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.days ?? 3650) * DAY_MS),
    keys: keys as unknown as LibKeyPair,
    signingAlgorithm: ALG,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as LibKeyPair['publicKey']),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await pkcs8Pem(keys.privateKey) };
}

/**
 * A certificate for a node or client named `name` (its CN), signed by `ca`,
 * good for both ends of a mutual TLS connection. `hosts` are the DNS names
 * and IP addresses it may be reached at (default localhost and 127.0.0.1).
 */
export async function issueCertificate(ca: Pem, name: string, options: { hosts?: string[]; days?: number } = {}): Promise<Pem> {
  checkName(name);
  const lib = await x509();
  const caCert = new lib.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(ca.key), ALG, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const hosts = options.hosts ?? ['localhost', '127.0.0.1'];
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [name] }],
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.days ?? 825) * DAY_MS),
    publicKey: keys.publicKey as unknown as LibKeyPair['publicKey'],
    signingKey: caKey as unknown as LibKeyPair['privateKey'],
    signingAlgorithm: ALG,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature | lib.KeyUsageFlags.keyAgreement, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth, lib.ExtendedKeyUsage.clientAuth]),
      new lib.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIp(h) ? 'ip' : 'dns', value: h }) as const)),
      await lib.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await pkcs8Pem(keys.privateKey) };
}

function isIp(h: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(':');
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/**
 * Write a CA and one certificate per name into `dir` (ca.crt, ca.key,
 * <name>.crt, <name>.key). An existing CA in `dir` is kept, never replaced,
 * so certificates can be added later; an existing name's files are refused.
 */
export async function writeDevCertificates(dir: string, names: string[], options: { hosts?: string[] } = {}): Promise<string[]> {
  for (const n of names) checkName(n);
  if (new Set(names).size !== names.length) throw new TypeError('each certificate name may be given once');
  mkdirSync(dir, { recursive: true });
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  let ca: Pem;
  const written: string[] = [];
  if (existsSync(caCert) || existsSync(caKey)) {
    ca = { cert: readFileSync(caCert, 'utf8'), key: readFileSync(caKey, 'utf8') };
  } else {
    ca = await createDevCa();
    writeFileSync(caKey, ca.key, { mode: 0o600, flag: 'wx' });
    writeFileSync(caCert, ca.cert, { flag: 'wx' });
    written.push(caCert, caKey);
  }
  for (const n of names) {
    if (existsSync(join(dir, `${n}.crt`)) || existsSync(join(dir, `${n}.key`))) throw new Error(`${join(dir, n)}.crt or .key exists already; not replaced`);
  }
  for (const n of names) {
    const pem = await issueCertificate(ca, n, options);
    writeFileSync(join(dir, `${n}.key`), pem.key, { mode: 0o600, flag: 'wx' });
    writeFileSync(join(dir, `${n}.crt`), pem.cert, { flag: 'wx' });
    written.push(join(dir, `${n}.crt`), join(dir, `${n}.key`));
  }
  return written;
}
