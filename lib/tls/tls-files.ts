import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';

/**
 * What a node or client needs for mutual TLS: the cluster's CA certificate
 * (the only issuer it trusts), its own certificate, and its private key,
 * all PEM. Every connection, peer or client, is authenticated against `ca`
 * in both directions; the certificate's common name is the holder's name.
 */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

/** Bad TLS material: the message names the file and what is wrong with it. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/** Read and check the three files; throws TlsConfigError naming the first problem. */
export function readTlsFiles(paths: TlsPaths): TlsFiles {
  const read = (what: keyof TlsPaths): string => {
    const path = paths[what];
    if (typeof path !== 'string' || path === '') throw new TlsConfigError(`no ${what} file given`);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new TlsConfigError(`cannot read the ${what} file ${path}: ${(e as Error).message}`);
    }
  };
  const files = { ca: read('ca'), cert: read('cert'), key: read('key') };
  checkTlsFiles(files, paths);
  return files;
}

/**
 * Check that the certificate parses, is signed by the CA, is valid now, and
 * belongs to the key: a node that would fail every handshake should say so
 * at start, not retry forever. Returns the certificate's common name.
 */
export function checkTlsFiles(files: TlsFiles, paths?: TlsPaths): string {
  const where = (what: keyof TlsPaths) => (paths ? `the ${what} file ${paths[what]}` : `the ${what}`);
  const parse = (what: 'ca' | 'cert'): X509Certificate => {
    try {
      return new X509Certificate(files[what]);
    } catch (e) {
      throw new TlsConfigError(`${where(what)} is not a PEM certificate: ${(e as Error).message}`);
    }
  };
  const ca = parse('ca');
  const cert = parse('cert');
  if (!ca.ca) throw new TlsConfigError(`${where('ca')} is not a CA certificate`);
  if (!cert.verify(ca.publicKey)) throw new TlsConfigError(`${where('cert')} is not signed by ${where('ca')}`);
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) {
    throw new TlsConfigError(`${where('cert')} is not valid now (valid from ${cert.validFrom} to ${cert.validTo})`);
  }
  let key;
  try {
    key = createPrivateKey(files.key);
  } catch (e) {
    throw new TlsConfigError(`${where('key')} is not a PEM private key: ${(e as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) throw new TlsConfigError(`${where('key')} does not belong to ${where('cert')}`);
  const name = commonNameOf(cert.subject);
  if (!name) throw new TlsConfigError(`${where('cert')} has no common name (CN), which names its holder`);
  return name;
}

/** The CN of a subject as node:crypto prints it ("CN=peer-1\nO=..."). */
function commonNameOf(subject: string): string | undefined {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** The authenticated name of the other end of a TLS connection, from its certificate. */
export function peerName(cert: PeerCertificate | undefined): string | undefined {
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}
