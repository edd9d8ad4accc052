import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { TlsFiles } from './config.js';
import type { Logger } from './logger.js';

/** TlsMaterial is one consistent set of PEM contents: certificate chain, private key, CA bundle. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

/** loadTlsMaterial reads the three PEM files and checks that key and certificate belong together. */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([readFile(files.certFile), readFile(files.keyFile), readFile(files.caFile)]);
  // createSecureContext parses the PEMs and fails on a key that does not match the certificate,
  // so a half-written rotation is never put into service.
  createSecureContext({ cert, key, ca });
  return { cert, key, ca };
}

function fingerprint(m: TlsMaterial): string {
  return createHash('sha256').update(m.cert).update(m.key).update(m.ca).digest('hex');
}

/**
 * CertificateSource holds the current TLS material of a process and reloads it when the files
 * change on disk (cert-manager rotates them in place). Listeners get each new, validated set; a
 * partial or invalid set is ignored and the last good one stays in use.
 */
export class CertificateSource {
  #current: TlsMaterial;
  #fingerprint: string;
  readonly #files: TlsFiles;
  readonly #listeners = new Set<(m: TlsMaterial) => void>();
  #timer: NodeJS.Timeout | undefined;
  /** seen is the identity of the files the current material was last read from ('' when unknown). */
  #seen = '';
  #logger: Logger | undefined;

  private constructor(files: TlsFiles, material: TlsMaterial, logger: Logger | undefined) {
    this.#files = files;
    this.#current = material;
    this.#fingerprint = fingerprint(material);
    this.#logger = logger;
  }

  /** open loads the files once and, with a poll interval, watches them for changes. */
  static async open(files: TlsFiles, options: { pollIntervalMs?: number; logger?: Logger } = {}): Promise<CertificateSource> {
    const source = new CertificateSource(files, await loadTlsMaterial(files), options.logger);
    if (options.pollIntervalMs !== undefined) source.#watch(options.pollIntervalMs);
    return source;
  }

  /** current is the material in use now. */
  get current(): TlsMaterial {
    return this.#current;
  }

  /** onChange registers a listener for new material; it returns a function that removes it. */
  onChange(listener: (m: TlsMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** reload checks the files now; it resolves to true when new material was put into service. */
  async reload(): Promise<boolean> {
    return (await this.#load()) === 'new';
  }

  async #load(): Promise<'new' | 'same' | 'failed'> {
    let next: TlsMaterial;
    try {
      next = await loadTlsMaterial(this.#files);
    } catch (err) {
      // A rotation in progress may leave the files inconsistent for a moment: keep the last good set.
      this.#logger?.warn({ err: (err as Error).message }, 'tls files unreadable or inconsistent; keeping the current certificate');
      return 'failed';
    }
    const fp = fingerprint(next);
    if (fp === this.#fingerprint) return 'same';
    this.#current = next;
    this.#fingerprint = fp;
    this.#logger?.info({ cert_sha256: fp.slice(0, 16) }, 'tls certificate reloaded');
    for (const listener of this.#listeners) listener(next);
    return 'new';
  }

  #watch(intervalMs: number): void {
    // Polling rather than fs.watch: Kubernetes swaps mounted Secret files through symlinked
    // directories, which inotify watches on the files themselves miss.
    this.#timer = setInterval(() => void this.#poll(), intervalMs);
    this.#timer.unref();
  }

  /**
   * poll reloads when a file's identity (inode, size, change and modification times, through
   * symlinks) differs from the last loaded set's: reading and parsing the PEMs on every tick was
   * about 3% of a busy kernel's CPU. A set that fails to load is retried on the next tick.
   */
  async #poll(): Promise<void> {
    let seen: string;
    try {
      const stats = await Promise.all([stat(this.#files.certFile), stat(this.#files.keyFile), stat(this.#files.caFile)]);
      seen = stats.map((s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`).join(' ');
    } catch {
      seen = '';
    }
    if (seen !== '' && seen === this.#seen) return;
    // Remembered only once the files were read as one good set (new or the same as before).
    if ((await this.#load()) !== 'failed') this.#seen = seen;
  }

  /** close stops watching. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#listeners.clear();
  }
}
