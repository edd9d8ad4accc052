// A STAND-IN for Twilio's REST API (tests only; see test/twilio-standin/README.md): the two Call
// resource requests Parley makes, in the wire format Twilio documents
// (https://www.twilio.com/docs/voice/api/call-resource): "create a call"
// (POST /2010-04-01/Accounts/{AccountSid}/Calls.json) and "update a call"
// (POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json), form-encoded, HTTP Basic auth with
// the Account SID and auth token, answering a Call resource as JSON or Twilio's error JSON
// ({code, message, more_info, status}).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';

/** TwilioRequest is one REST request the stand-in received. */
export interface TwilioRequest {
  readonly method: string;
  readonly path: string;
  /** authorization is the decoded Basic credential (`AccountSid:AuthToken`), '' when absent. */
  readonly authorization: string;
  /** form is the form-encoded body's fields. */
  readonly form: Record<string, string>;
}

/** TwilioStandin is a running stand-in for one Twilio account. */
export interface TwilioStandin {
  /** apiBaseUrl is what an agent's telephony settings take as `apiBaseUrl`. */
  readonly apiBaseUrl: string;
  readonly port: number;
  readonly caPem: string;
  readonly requests: TwilioRequest[];
  /** calls are the calls created through "create a call", by SID. */
  readonly calls: Map<string, { to: string; from: string; twiml: string }>;
  /** failNext makes the next request answer with this Twilio error (e.g. 404 code 20404 for an unknown call). */
  failNext(error: { status: number; code: number; message: string }): void;
  stop(): Promise<void>;
}

/** startTwilioStandin answers for `accountSid`, accepting only `authToken`. */
export async function startTwilioStandin(options: { accountSid: string; authToken: string }): Promise<TwilioStandin> {
  const requests: TwilioRequest[] = [];
  const calls = new Map<string, { to: string; from: string; twiml: string }>();
  let failure: { status: number; code: number; message: string } | undefined;
  const ca = await createCertificateAuthority({ name: 'Twilio stand-in test CA' });
  const leaf = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const error = (status: number, code: number, message: string) =>
    JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
  const callResource = (sid: string, to: string, from: string, status: string) =>
    JSON.stringify({
      sid,
      account_sid: options.accountSid,
      to,
      from,
      status,
      direction: 'outbound-api',
      api_version: '2010-04-01',
      uri: `/2010-04-01/Accounts/${options.accountSid}/Calls/${sid}.json`,
    });
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'https://api.twilio.com').pathname;
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const authorization = basic?.[1] === undefined ? '' : Buffer.from(basic[1], 'base64').toString('utf8');
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      requests.push({ method: req.method ?? '', path, authorization, form });
      const answer = (status: number, body: string) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body);
      };
      if (authorization !== `${options.accountSid}:${options.authToken}`) return answer(401, error(401, 20003, 'Authenticate'));
      if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
        return answer(400, error(400, 20001, 'Invalid Content-Type: use application/x-www-form-urlencoded'));
      if (failure !== undefined) {
        const f = failure;
        failure = undefined;
        return answer(f.status, error(f.status, f.code, f.message));
      }
      const base = `/2010-04-01/Accounts/${options.accountSid}/Calls`;
      if (req.method === 'POST' && path === `${base}.json`) {
        if (!form.To || !form.From) return answer(400, error(400, 21201, 'No called number is specified'));
        if (!form.Url && !form.Twiml) return answer(400, error(400, 21205, 'Url parameter is required'));
        const sid = `CA${randomBytes(16).toString('hex')}`;
        calls.set(sid, { to: form.To, from: form.From, twiml: form.Twiml ?? '' });
        return answer(201, callResource(sid, form.To, form.From, 'queued'));
      }
      const update = new RegExp(`^${base}/(CA[0-9a-f]{32})\\.json$`).exec(path);
      if (req.method === 'POST' && update?.[1] !== undefined) {
        if (!form.Twiml && !form.Url && !form.Status) return answer(400, error(400, 21205, 'Url parameter is required'));
        return answer(200, callResource(update[1], '+15005550006', '+15005550001', 'in-progress'));
      }
      answer(404, error(404, 20404, `The requested resource ${path} was not found`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    apiBaseUrl: `https://127.0.0.1:${port}`,
    port,
    caPem: ca.certPem,
    requests,
    calls,
    failNext(f) {
      failure = f;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** egressEnvFor lets the orchestrator's egress client reach these loopback stand-ins (ports, loopback, and every stand-in's CA). */
export function egressEnvFor(standins: readonly { port: number; caPem: string }[]): Record<string, string> {
  const caFile = join(mkdtempSync(join(tmpdir(), 'parley-standins-')), 'ca.pem');
  writeFileSync(caFile, standins.map((s) => s.caPem).join('\n'));
  return {
    PARLEY_EGRESS_ALLOWED_PORTS: standins.map((s) => String(s.port)).join(','),
    PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
    NODE_EXTRA_CA_CERTS: caFile,
  };
}
