// Test PKI: a temporary folder with the dev CA and service certificates, plus the bad ones the
// kernel tests need (another CA, expired, no SPIFFE ID). Everything is generated per run.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, ensureDevPki, issueCertificate, loadCertificateAuthority, type DevPkiPaths } from '@parley/devpki';
import { spiffeIdFor, type ServiceName, type TlsFiles } from '@parley/platform';
import { readFile } from 'node:fs/promises';

/** TestPki is a generated PKI for one test file. */
export interface TestPki {
  readonly paths: DevPkiPaths;
  /** files returns the TLS file triple of a service. */
  files(service: ServiceName): TlsFiles;
  /** issue writes an extra certificate signed by the dev CA and returns its files. */
  issue(name: string, options: Parameters<typeof issueCertificate>[1]): Promise<TlsFiles>;
  /** foreign writes a certificate for a service signed by an unrelated CA. */
  foreign(service: ServiceName): Promise<TlsFiles>;
}

/** createTestPki generates a dev PKI in a fresh temporary folder. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-pki-'));
  const paths = await ensureDevPki({ dir });
  const ca = await loadCertificateAuthority(await readFile(paths.caCert, 'utf8'), await readFile(paths.caKey, 'utf8'));
  const write = async (name: string, certPem: string, keyPem: string, caFile: string): Promise<TlsFiles> => {
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    await writeFile(certFile, certPem);
    await writeFile(keyFile, keyPem, { mode: 0o600 });
    return { certFile, keyFile, caFile };
  };
  return {
    paths,
    files: (service) => ({ certFile: paths.cert(service), keyFile: paths.key(service), caFile: paths.caCert }),
    async issue(name, options) {
      const issued = await issueCertificate(ca, options);
      return write(name, issued.certPem, issued.keyPem, paths.caCert);
    },
    async foreign(service) {
      const other = await createCertificateAuthority({ name: 'Somebody Else CA' });
      await writeFile(join(dir, 'foreign-ca.crt'), other.certPem);
      const issued = await issueCertificate(other, { spiffeId: spiffeIdFor(service) });
      return write(`foreign-${service}`, issued.certPem, issued.keyPem, join(dir, 'foreign-ca.crt'));
    },
  };
}
