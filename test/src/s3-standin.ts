// A STAND-IN for S3-compatible object storage, for tests only (see test/s3-standin/README.md):
// path-style PutObject, GetObject, HeadObject and DeleteObject on one bucket, and the multipart
// upload calls (CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload),
// each request's AWS Signature Version 4 checked against the one key pair it knows.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
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
  /** requests lists each request: method, key, the S3 operation and the HTTP status answered. */
  readonly requests: { method: string; key: string; status: number; operation: string }[];
  /** uploads are the multipart uploads begun and neither completed nor aborted, by upload id. */
  readonly uploads: Map<string, { key: string; parts: Map<number, Buffer> }>;
  /** stallMs, when set, holds every answer that long (ms): a service that accepts connections but does not answer. */
  stallMs: number;
  /** held counts the requests received and held by stallMs, not answered yet, by S3 operation. */
  readonly held: Map<string, number>;
  /** unavailable, when set, answers every request 503 ServiceUnavailable (an outage). */
  unavailable: boolean;
  stop(): Promise<void>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

// The S3 operation a request asks for, from its method and query.
function operationOf(req: IncomingMessage): string {
  const query = new URL(req.url ?? '/', 'http://standin').searchParams;
  const uploadId = query.get('uploadId');
  return req.method === 'POST' && query.has('uploads')
    ? 'CreateMultipartUpload'
    : req.method === 'PUT' && uploadId !== null
      ? 'UploadPart'
      : req.method === 'POST' && uploadId !== null
        ? 'CompleteMultipartUpload'
        : req.method === 'DELETE' && uploadId !== null
          ? 'AbortMultipartUpload'
          : (({ PUT: 'PutObject', GET: 'GetObject', HEAD: 'HeadObject', DELETE: 'DeleteObject' } as Record<string, string>)[
              req.method ?? ''
            ] ?? 'Unknown');
}

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
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
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
    .map(
      (h) =>
        `${h}:${String(req.headers[h] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
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
    requests: [] as { method: string; key: string; status: number; operation: string }[],
    uploads: new Map<string, { key: string; parts: Map<number, Buffer> }>(),
    stallMs: 0,
    held: new Map<string, number>(),
    unavailable: false,
    stop: (): Promise<void> => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (standin.stallMs > 0) {
        const operation = operationOf(req);
        standin.held.set(operation, (standin.held.get(operation) ?? 0) + 1);
        setTimeout(() => {
          standin.held.set(operation, (standin.held.get(operation) ?? 1) - 1);
          handle(req, res, Buffer.concat(chunks));
        }, standin.stallMs).unref();
      } else handle(req, res, Buffer.concat(chunks));
    });
  });
  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    const path = decodeURIComponent(url.pathname);
    const [, bucket = '', ...rest] = path.split('/');
    const key = rest.join('/');
    const operation = operationOf(req);
    const answer = (status: number) => standin.requests.push({ method: req.method ?? '', key, status, operation });
    if (standin.unavailable) {
      answer(503);
      return xmlError(res, 503, 'ServiceUnavailable', 'Service is unable to handle request.', path);
    }
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
    if (operation.endsWith('MultipartUpload') || operation === 'UploadPart') return multipart(req, res, operation, key, path, body, answer);
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
  };

  /** multipart answers the multipart upload calls, as S3 documents them (XML bodies, ETags, 5 MiB smallest part). */
  const multipart = (
    req: IncomingMessage,
    res: ServerResponse,
    operation: string,
    key: string,
    path: string,
    body: Buffer,
    answer: (status: number) => void,
  ): void => {
    const query = new URL(req.url ?? '/', 'http://standin').searchParams;
    const xml = (status: number, payload: string) => {
      answer(status);
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${payload}`);
    };
    if (operation === 'CreateMultipartUpload') {
      const id = randomUUID();
      standin.uploads.set(id, { key, parts: new Map() });
      return xml(
        200,
        `<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${standin.bucket}</Bucket><Key>${key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    const id = query.get('uploadId') ?? '';
    const upload = standin.uploads.get(id);
    if (upload === undefined || upload.key !== key) {
      answer(404);
      return xmlError(res, 404, 'NoSuchUpload', 'The specified multipart upload does not exist.', path);
    }
    if (operation === 'AbortMultipartUpload') {
      standin.uploads.delete(id);
      answer(204);
      return void res.writeHead(204).end();
    }
    if (operation === 'UploadPart') {
      const partNumber = Number(query.get('partNumber'));
      const length = req.headers['content-length'];
      if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
        answer(400);
        return xmlError(res, 400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', path);
      }
      if (length === undefined || Number(length) !== body.length) {
        answer(411);
        return xmlError(res, 411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.', path);
      }
      upload.parts.set(partNumber, body);
      answer(200);
      return void res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` }).end();
    }
    // CompleteMultipartUpload: the listed parts, in ascending order, each with the ETag UploadPart answered.
    const parsed = new XMLParser({ isArray: (name) => name === 'Part' }).parse(body.toString('utf8')) as {
      CompleteMultipartUpload?: { Part?: { PartNumber?: number; ETag?: string }[] };
    };
    const listed = parsed.CompleteMultipartUpload?.Part ?? [];
    if (listed.length === 0) {
      answer(400);
      return xmlError(res, 400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate.', path);
    }
    const pieces: Buffer[] = [];
    let previous = 0;
    for (const [i, part] of listed.entries()) {
      const number = Number(part.PartNumber);
      const stored = upload.parts.get(number);
      if (number <= previous) {
        answer(400);
        return xmlError(res, 400, 'InvalidPartOrder', 'The list of parts was not in ascending order.', path);
      }
      previous = number;
      if (stored === undefined || String(part.ETag).replaceAll('"', '') !== createHash('md5').update(stored).digest('hex')) {
        answer(400);
        return xmlError(res, 400, 'InvalidPart', 'One or more of the specified parts could not be found.', path);
      }
      if (i < listed.length - 1 && stored.length < 5 * 1024 * 1024) {
        answer(400);
        return xmlError(res, 400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', path);
      }
      pieces.push(stored);
    }
    const object = Buffer.concat(pieces);
    standin.objects.set(key, object);
    standin.uploads.delete(id);
    return xml(
      200,
      `<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${standin.bucket}</Bucket><Key>${key}</Key><ETag>"${createHash('md5').update(object).digest('hex')}-${listed.length}"</ETag></CompleteMultipartUploadResult>`,
    );
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standin.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  standin.stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return standin;
}
