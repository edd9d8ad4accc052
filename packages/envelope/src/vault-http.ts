// Vault over HTTP through node-vault: one request with a deadline, and reading Vault's answers
// and failures without echoing what was sent (requests carry tokens and keys).
import NodeVault from 'node-vault';
import { UnavailableError } from '@parley/platform';

/** VaultMethod is the HTTP method of a Vault call. */
export type VaultMethod = 'GET' | 'POST';

/** VaultRequest makes one Vault call with the given token (none for a login). */
export type VaultRequest = (method: VaultMethod, path: string, body: object | undefined, token: string | undefined) => Promise<unknown>;

/** VaultHttpOptions configure createVaultRequest. */
export interface VaultHttpOptions {
  readonly address: string;
  readonly namespace?: string;
  readonly caCertPem?: string;
  readonly timeoutMs: number;
}

/**
 * createVaultRequest builds a node-vault client whose configuration is only what is given here
 * (none of node-vault's environment fallbacks) and returns one-call requests bounded by the
 * deadline, so a hung Vault cannot hold a caller.
 */
export function createVaultRequest(options: VaultHttpOptions): VaultRequest {
  const client = NodeVault({
    endpoint: options.address,
    apiVersion: 'v1',
    ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
    requestOptions: { timeout: options.timeoutMs, ...(options.caCertPem !== undefined ? { ca: options.caCertPem } : {}) },
    // node-vault reads VAULT_SKIP_VERIFY from the environment; TLS verification is not optional here.
    rpDefaults: { strictSSL: true },
  } as NodeVault.VaultOptions & { rpDefaults: object });
  // node-vault also falls back to VAULT_TOKEN, VAULT_PREFIX and VAULT_NAMESPACE from the
  // environment. Configuration is explicit here, and the token is sent per request instead.
  client.token = '';
  (client as unknown as { pathPrefix: string }).pathPrefix = '';
  (client as unknown as { namespace: string | undefined }).namespace = options.namespace;
  return async (method, path, body, token) => {
    const attempt = (): Promise<unknown> => {
      const headers: Record<string, string> = token !== undefined ? { 'X-Vault-Token': token } : {};
      const requestOptions = { headers, timeout: options.timeoutMs };
      const call = method === 'GET' ? client.read(path, requestOptions) : client.write(path, body ?? {}, requestOptions);
      return withDeadline(call, options.timeoutMs);
    };
    try {
      return await attempt();
    } catch (err) {
      // A kept-alive connection that the server (or a load balancer) closed while idle fails
      // with a reset on reuse; one fresh attempt tells that apart from Vault being down. Every
      // call made here is safe to repeat.
      const code = (err as { code?: unknown } | null)?.code;
      if (code !== 'ECONNRESET' && code !== 'EPIPE') throw err;
      return attempt();
    }
  };
}

class VaultDeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** withDeadline settles within timeoutMs whatever the transport does. */
function withDeadline<T>(call: Promise<T>, timeoutMs: number): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new VaultDeadlineError(timeoutMs));
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** statusOf is the HTTP status of a Vault failure; undefined when Vault did not answer. */
export function statusOf(err: unknown): number | undefined {
  const response = (err as { response?: { statusCode?: unknown } } | null)?.response;
  return typeof response?.statusCode === 'number' ? response.statusCode : undefined;
}

/**
 * vaultErrorOf is Vault's own error text from a failed call, on one line and bounded; empty when
 * Vault gave none. Vault words many errors as a multierror (`1 error occurred:\n\t* permission
 * denied\n\n`): only the items are kept.
 */
export function vaultErrorOf(err: unknown): string {
  const body = (err as { response?: { body?: { errors?: unknown } } }).response?.body;
  const errors = body?.errors;
  if (!Array.isArray(errors) || errors.length === 0) return '';
  return errors
    .map((e) => {
      const text = String(e);
      const items = /^\d+ errors? occurred:/.test(text) ? [...text.matchAll(/^\s*\* (.+)$/gm)].map((m) => m[1] ?? '') : [text];
      return items.join('; ');
    })
    .join('; ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/** vaultStatusText is `403: permission denied`, or `404` when Vault said nothing more. */
export function vaultStatusText(status: number, err: unknown): string {
  const message = vaultErrorOf(err);
  return message === '' ? String(status) : `${status}: ${message}`;
}

/** describeFailure names a transport failure without echoing request details (they carry the token). */
export function describeFailure(err: unknown): string {
  if (err instanceof VaultDeadlineError) return err.message;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code === 'ECONNABORTED' ? 'request timed out' : code;
  const status = statusOf(err);
  if (status !== undefined) return `HTTP ${status}`;
  return err instanceof Error ? err.name : 'unknown error';
}

/** dataOf is the `data` object of a Vault answer. */
export function dataOf(body: unknown, path: string): Record<string, unknown> {
  const data = (body as { data?: unknown } | null)?.data;
  if (typeof data !== 'object' || data === null)
    throw new UnavailableError(`Vault's answer to ${path} has no "data" object: is this a Vault server?`);
  return data as Record<string, unknown>;
}

/** stringField reads a non-empty string from a Vault answer's data. */
export function stringField(data: Record<string, unknown>, name: string, path: string): string {
  const value = data[name];
  if (typeof value !== 'string' || value.length === 0) throw new UnavailableError(`Vault's answer to ${path} has no "${name}" string`);
  return value;
}

/** numberField reads a whole number from a Vault answer's data. */
export function numberField(data: Record<string, unknown>, name: string, path: string): number {
  const value = data[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw new UnavailableError(`Vault's answer to ${path} has no "${name}" number`);
  return value;
}
