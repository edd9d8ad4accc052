// Vault's HTTP wire format as the stand-in speaks it: error bodies, the response envelope, the
// health body, batch input, field decoding and the node:http plumbing.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** VaultHttpError is an answer in Vault's error format: a status and `errors`. */
export class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
    /** noRoute marks "no mount here": 404 for a root token, a policy denial (403) for any other, as Vault checks the ACL first. */
    readonly noRoute = false,
  ) {
    super(errors.join('; '));
  }
}

/** ACL_DENIED is how Vault words a request its policies do not allow (a multierror, in Vault's own format). */
export const ACL_DENIED = '1 error occurred:\n\t* permission denied\n\n';
/** UNSUPPORTED_OPERATION is Vault's answer to a method a path does not take. */
export const UNSUPPORTED_OPERATION = '1 error occurred:\n\t* unsupported operation\n\n';

/** requireMethod refuses a method the route does not take: `write` is POST or PUT, `read` is GET. */
export function requireMethod(method: string, kind: 'read' | 'write'): void {
  const ok = kind === 'write' ? method === 'POST' || method === 'PUT' : method === 'GET';
  if (!ok) throw new VaultHttpError(405, [UNSUPPORTED_OPERATION]);
}

/** envelope wraps data or auth in Vault's response envelope. */
export function envelope(data: object | null, auth: object | null = null): object {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth,
    mount_type: '',
  };
}

/** healthBody is what sys/health answers. */
export function healthBody(sealed: boolean): object {
  return {
    initialized: true,
    sealed,
    standby: false,
    performance_standby: false,
    replication_performance_mode: 'disabled',
    replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(Date.now() / 1000),
    version: '1.17.0+standin',
    cluster_name: 'vault-standin',
    cluster_id: '00000000-0000-4000-8000-000000000000',
  };
}

/** integerField reads an integer field that may come as a string, as Vault does. */
export function integerField(value: unknown, name: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n))
    throw new VaultHttpError(400, [`error converting input ${String(value)} for field "${name}"`]);
  return n;
}

/** decodeBase64 decodes a base64 field, refusing what is not base64 as Vault does. */
export function decodeBase64(value: string, field: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new VaultHttpError(400, [`failed to base64-decode ${field}`]);
  return Buffer.from(value, 'base64');
}

/**
 * batched runs one transit operation on the request itself or, with `batch_input`, on each item
 * in order: an item that fails gets `error` in its place in `batch_results`, and any failure makes
 * the answer 400 (Vault's default `partial_failure_response_code`).
 */
export function batched(body: Record<string, unknown>, one: (item: Record<string, unknown>) => object): [number, object] {
  if (body.batch_input === undefined) return [200, envelope(one(body))];
  if (!Array.isArray(body.batch_input) || body.batch_input.length === 0) throw new VaultHttpError(400, ['missing batch input to process']);
  let failed = false;
  const results = (body.batch_input as unknown[]).map((item) => {
    try {
      if (typeof item !== 'object' || item === null) throw new VaultHttpError(400, ['batch input item is not an object']);
      return one(item as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof VaultHttpError)) throw err;
      failed = true;
      return { error: err.errors.join('; ') };
    }
  });
  const partialStatus =
    body.partial_failure_response_code === undefined
      ? 400
      : integerField(body.partial_failure_response_code, 'partial_failure_response_code');
  return [failed ? partialStatus : 200, envelope({ batch_results: results })];
}

/** send writes a JSON answer (or 204 for none). */
export function send(res: ServerResponse, status: number, payload: object | null): void {
  if (status === 204 || payload === null) {
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** readBody reads a request body whole (empty on error). */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.alloc(0)));
    req.on('close', () => resolve(Buffer.concat(chunks)));
  });
}
