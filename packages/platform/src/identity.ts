// The certificate's ASN.1 structures themselves (@peculiar/asn1-x509, what @peculiar/x509 parses
// with), not @peculiar/x509: that one also loads CMS, PKCS#12, CSR and key-format modules, tsyringe
// and reflect-metadata, about 60 ms of every process start, to read one extension.
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectAltName, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { isServiceName, type ServiceName } from './services.js';

/** Caller is the authenticated peer of an mTLS connection. */
export interface Caller {
  /** spiffeId is the URI SAN of the peer certificate, e.g. spiffe://parley.local/edge. */
  readonly spiffeId: string;
  /** service is the Parley service named by the SPIFFE ID, when it is one in our trust domain. */
  readonly service: ServiceName | undefined;
}

/** SpiffeId is a parsed SPIFFE ID. */
export interface SpiffeId {
  readonly trustDomain: string;
  readonly path: string;
}

/** parseSpiffeId parses spiffe://<trust-domain>/<path> strictly; undefined when it is not one. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  // The SPIFFE spec: lower-case trust domain of [a-z0-9.-_], no port, no userinfo, no query or
  // fragment, a path of non-empty segments of [A-Za-z0-9.-_] without "." or "..".
  const match = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)+)$/.exec(uri);
  if (match === null) return undefined;
  const [, trustDomain, path] = match as unknown as [string, string, string];
  if (path.split('/').some((seg) => seg === '.' || seg === '..')) return undefined;
  return { trustDomain, path: path.slice(1) };
}

/** spiffeIdsOfCertificate returns every spiffe:// URI SAN of a DER certificate, parsed by @peculiar/asn1-x509. */
export function spiffeIdsOfCertificate(der: Uint8Array): string[] {
  const cert = AsnConvert.parse(der, Certificate);
  const ext = cert.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_subjectAltName);
  if (ext === undefined) return [];
  const san = AsnConvert.parse(ext.extnValue.buffer, SubjectAlternativeName);
  // Array.from: a plain array of strings, not an instance of the ASN.1 list class.
  return Array.from(san, (n) => n.uniformResourceIdentifier).filter(
    (uri): uri is string => uri !== undefined && uri.startsWith('spiffe://'),
  );
}

/**
 * callerFromCertificate derives the caller of a connection from its verified peer certificate.
 * A certificate must carry exactly one SPIFFE ID (the SVID rule); several or none make it
 * anonymous, which no allow-list admits.
 */
export function callerFromCertificate(der: Uint8Array, trustDomain: string): Caller | undefined {
  const ids = spiffeIdsOfCertificate(der);
  if (ids.length !== 1) return undefined;
  const spiffeId = ids[0] as string;
  const parsed = parseSpiffeId(spiffeId);
  if (parsed === undefined) return undefined;
  const service = parsed.trustDomain === trustDomain && isServiceName(parsed.path) ? parsed.path : undefined;
  return { spiffeId, service };
}
