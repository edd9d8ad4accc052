// @parley/devpki — a development PKI made at run time: one dev CA and one short-lived SPIFFE
// certificate per service. Certificates are built with @peculiar/x509 (no openssl, no
// hand-written ASN.1) and written into a git-ignored folder; nothing here is ever committed.
import { webcrypto } from 'node:crypto';
import 'reflect-metadata';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  cryptoProvider,
} from '@peculiar/x509';
import { DEFAULT_TRUST_DOMAIN, SERVICE_NAMES, spiffeIdFor, type ServiceName } from '@parley/platform';

cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;

/** CertificateAuthority is a CA that can issue certificates: its certificate and signing key. */
export interface CertificateAuthority {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: X509Certificate;
  readonly key: CryptoKey;
}

/** IssuedCertificate is a leaf certificate and its private key, both PEM. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, true, ['sign']);
}

/** createCertificateAuthority makes a self-signed ECDSA P-256 CA valid for validityHours. */
export async function createCertificateAuthority(
  options: { name?: string; validityHours?: number; notBefore?: Date } = {},
): Promise<CertificateAuthority> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const notBefore = options.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const cert = await X509CertificateGenerator.createSelfSigned({
    name: `CN=${options.name ?? 'Parley Dev CA'}, O=Parley development`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.validityHours ?? 24 * 7) * HOUR),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, key: keys.privateKey, certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** loadCertificateAuthority reads a CA from its PEM certificate and PKCS#8 key. */
export async function loadCertificateAuthority(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  return { cert: new X509Certificate(certPem), key: await importKeyPem(keyPem), certPem, keyPem };
}

/** IssueOptions describe a leaf certificate. */
export interface IssueOptions {
  /** spiffeId becomes the URI SAN (omit for a certificate without one). */
  readonly spiffeId?: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validityHours?: number;
  readonly notBefore?: Date;
  readonly commonName?: string;
}

/** issueCertificate signs a leaf certificate for both TLS server and client use. */
export async function issueCertificate(ca: CertificateAuthority, options: IssueOptions): Promise<IssuedCertificate> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const notBefore = options.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const names = [
    ...(options.spiffeId !== undefined ? [{ type: 'url' as const, value: options.spiffeId }] : []),
    ...(options.dnsNames ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? ['127.0.0.1', '::1']).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await X509CertificateGenerator.create({
    subject: `CN=${options.commonName ?? options.spiffeId ?? 'parley'}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.validityHours ?? 24) * HOUR),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
      new SubjectAlternativeNameExtension(names, false),
      await AuthorityKeyIdentifierExtension.create(ca.cert, false),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** DevPkiPaths names the files of a dev PKI folder. */
export interface DevPkiPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  cert(service: ServiceName): string;
  key(service: ServiceName): string;
}

/** devPkiPaths lays out a dev PKI folder: ca.crt, ca.key, <service>.crt and <service>.key. */
export function devPkiPaths(dir: string): DevPkiPaths {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: (s) => join(dir, `${s}.crt`),
    key: (s) => join(dir, `${s}.key`),
  };
}

async function writePem(path: string, pem: string, mode: number): Promise<void> {
  await writeFile(path, pem, { mode });
  await chmod(path, mode);
}

/** DevPkiOptions configure ensureDevPki. */
export interface DevPkiOptions {
  readonly dir: string;
  readonly trustDomain?: string;
  readonly services?: readonly ServiceName[];
  /** validityHours of service certificates (short on purpose); the CA lives a week. */
  readonly validityHours?: number;
}

async function remainingMs(path: string): Promise<number> {
  try {
    return new Date(new NodeX509Certificate(await readFile(path)).validTo).getTime() - Date.now();
  } catch {
    return -1;
  }
}

/**
 * ensureDevPki makes sure the folder holds a dev CA and a certificate per service with the
 * SPIFFE ID spiffe://<trust-domain>/<service>, DNS localhost and loopback IPs. It reuses what
 * is there while it has more than an hour left, and otherwise issues anew.
 */
export async function ensureDevPki(options: DevPkiOptions): Promise<DevPkiPaths> {
  const paths = devPkiPaths(options.dir);
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  let ca: CertificateAuthority;
  if ((await remainingMs(paths.caCert)) > 24 * HOUR) {
    ca = await loadCertificateAuthority(await readFile(paths.caCert, 'utf8'), await readFile(paths.caKey, 'utf8'));
  } else {
    ca = await createCertificateAuthority();
    await writePem(paths.caCert, ca.certPem, 0o644);
    await writePem(paths.caKey, ca.keyPem, 0o600);
  }
  for (const service of options.services ?? SERVICE_NAMES) {
    const valid = (await remainingMs(paths.cert(service))) > HOUR;
    const sameCa =
      valid &&
      (await readFile(paths.cert(service), 'utf8').then((pem) =>
        new NodeX509Certificate(pem).checkIssued(new NodeX509Certificate(ca.certPem)),
      ));
    if (valid && sameCa) continue;
    const issued = await issueCertificate(ca, {
      spiffeId: spiffeIdFor(service, trustDomain),
      ...(options.validityHours !== undefined ? { validityHours: options.validityHours } : {}),
    });
    await writePem(paths.cert(service), issued.certPem, 0o644);
    await writePem(paths.key(service), issued.keyPem, 0o600);
  }
  return paths;
}
