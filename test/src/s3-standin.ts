// A STAND-IN for S3-compatible object storage, for tests only (see test/s3-standin/README.md):
// path-style PutObject, GetObject, HeadObject and DeleteObject on one bucket, each request's
// AWS Signature Version 4 checked against the one key pair it knows.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** S3Standin is a running stand-in: its endpoint, its objects, and the requests it answered. */
export interface S3Standin {
  /** endpoint is the http URL to give an S3 client (path-style addressing). */
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  /** objects are the stored objects by key, exactly as received. */
  readonly objects: Map<string, Buffer>;
  /** requests lists each request: method, key and the HTTP status answered. */
  readonly requests: { method: string; key: string; status: number }[];
  stop(): Promise<void>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

function xmlError(res: ServerResponse, status: number, code: string, message: string, resource: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource}</Resource><RequestId>standin</RequestId></Error>`,
  );
}

/** uriEncode is SigV4's encoding of a path or query component (RFC 3986 unreserved characters kept). */
function uriEncode(value: string, keepSlash: boolean): string {
  return [...Buffer.from(value, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9_.~-]/.test(c) || (keepSlash && c === '/')) return c;
      return `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/**
 * verifySignature recomputes the request's SigV4 signature (header form, as the AWS SDK sends
 * it) and answers the S3 error code to return, or undefined when it matches.
 */
function verifySignature(req: IncomingMessage, path: string, query: URLSearchParams, body: Buffer, s: S3Standin): string | undefined {
  const auth = req.headers.authorization ?? '';
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
    auth,
  );
  if (match === null) return 'AccessDenied';
  const [, keyId, day, region, signedHeaders, signature] = match as unknown as [string, string, string, string, string, string];
  if (keyId !== s.accessKeyId) return 'InvalidAccessKeyId';
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const payloadHash = String(req.headers['x-amz-content-sha256'] ?? '');
  if (!amzDate.startsWith(day) || payloadHash === '' || !signedHeaders.split(';').includes('host')) return 'AccessDenied';
  if (payloadHash !== 'UNSIGNED-PAYLOAD' && payloadHash !== sha256(body)) return 'XAmzContentSHA256Mismatch';
  const canonicalHeaders = signedHeaders
    .split(';')
    .map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalQuery = [...query.entries()]
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [req.method, uriEncode(path, true), canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${s.secretAccessKey}`, day), region), 's3'), 'aws4_request');
  const expected = createHmac('sha256', signingKey).update(toSign).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex')) ? undefined : 'SignatureDoesNotMatch';
}

/** startS3Standin listens on 127.0.0.1 (plain http, as a cluster-local MinIO might) with one bucket and one key pair. */
export async function startS3Standin(options: { bucket?: string; region?: string } = {}): Promise<S3Standin> {
  const standin = {
    endpoint: '',
    bucket: options.bucket ?? 'parley-recordings',
    region: options.region ?? 'us-east-1',
    accessKeyId: 'AKIASTANDIN0000000001',
    secretAccessKey: 'standin-secret-access-key-0000000000000000',
    objects: new Map<string, Buffer>(),
    requests: [] as { method: string; key: string; status: number }[],
    stop: (): Promise<void> => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://standin');
      const path = decodeURIComponent(url.pathname);
      const [, bucket = '', ...rest] = path.split('/');
      const key = rest.join('/');
      const body = Buffer.concat(chunks);
      const answer = (status: number) => standin.requests.push({ method: req.method ?? '', key, status });
      const denied = verifySignature(req, path, url.searchParams, body, standin);
      if (denied !== undefined) {
        answer(403);
        return xmlError(res, 403, denied, 'The request signature we calculated does not match the signature you provided.', path);
      }
      if (bucket !== standin.bucket) {
        answer(404);
        return xmlError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist', path);
      }
      if (key === '') {
        answer(400);
        return xmlError(res, 400, 'InvalidRequest', 'This stand-in serves object requests only', path);
      }
      const stored = standin.objects.get(key);
      switch (req.method) {
        case 'PUT': {
          const length = req.headers['content-length'];
          if (length === undefined || Number(length) !== body.length) {
            answer(411);
            return xmlError(res, 411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.', path);
          }
          standin.objects.set(key, body);
          answer(200);
          res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` });
          return res.end();
        }
        case 'GET':
        case 'HEAD':
          if (stored === undefined) {
            answer(404);
            if (req.method === 'HEAD') return res.writeHead(404).end();
            return xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.', path);
          }
          answer(200);
          res.writeHead(200, {
            'content-type': 'application/octet-stream',
            'content-length': String(stored.length),
            etag: `"${createHash('md5').update(stored).digest('hex')}"`,
          });
          return res.end(req.method === 'HEAD' ? undefined : stored);
        case 'DELETE':
          standin.objects.delete(key);
          answer(204);
          return res.writeHead(204).end();
        default:
          answer(405);
          return xmlError(res, 405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.', path);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standin.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  standin.stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return standin;
}
