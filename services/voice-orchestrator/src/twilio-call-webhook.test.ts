import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Code, ConnectError } from '@connectrpc/connect';
import { createLogger, parseTrustedProxies } from '@parley/platform';
import { twilioSignature } from '@parley/webhooks';
import { describe, expect, it } from 'vitest';
import { AddressBuckets, TtlCache } from './call-webhook-guard.js';
import { connectStreamTwiml, escapeXml, handleTwilioCall, REFUSED, type TwilioCallDeps } from './twilio-call-webhook.js';

describe('connectStreamTwiml', () => {
  it('escapes the stream URL and token as XML attribute values', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
    const twiml = connectStreamTwiml('wss://x.test/s?a=1&b=2', 'tok"/><Hangup/><x a="');
    expect(twiml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://x.test/s?a=1&amp;b=2">' +
        '<Parameter name="token" value="tok&quot;/&gt;&lt;Hangup/&gt;&lt;x a=&quot;"/></Stream></Connect></Response>',
    );
  });
});

// The handler behind a real HTTP server, its two peer calls answered in-process: what is tested is
// the webhook's own rate limit keying and its refusal of a CallSid identity has already answered.
describe('handleTwilioCall', () => {
  const tenantId = randomUUID();
  const agentId = randomUUID();
  const authToken = 'a'.repeat(32);
  const publicUrl = 'https://voice.example.test';
  const path = `/v1/telephony/twilio/voice/${tenantId}/${agentId}`;

  async function serve(deps: Partial<TwilioCallDeps>): Promise<{ url: string; close: () => Promise<void> }> {
    const full: TwilioCallDeps = {
      publicUrl,
      mediaStreamPath: '/v1/telephony/twilio/media',
      logger: createLogger({ service: 'voice-orchestrator', version: 'test', level: 'silent' }),
      authToken: () => Promise.resolve(authToken),
      mintCallToken: () => Promise.resolve({ sessionId: randomUUID(), token: 'tok' }),
      sources: new AddressBuckets(0.001, 1),
      trustedProxies: parseTrustedProxies(''),
      authTokens: new TtlCache<string | null>(30_000),
      answeredCalls: new TtlCache<true>(60_000),
      ...deps,
    };
    const server = createServer((req, res) => void handleTwilioCall(req, res, full));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }

  function call(base: string, headers: Record<string, string> = {}, callSid = `CA${randomBytes(16).toString('hex')}`) {
    const params = { CallSid: callSid, From: '+14155550100' };
    const signature = twilioSignature({ authToken, url: `${publicUrl}${path}`, params });
    return fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature, ...headers },
      body: new URLSearchParams(params).toString(),
    });
  }

  it('keys the rate limit on the client a trusted proxy names, and on the socket otherwise', async () => {
    const direct = await serve({});
    try {
      // Untrusted peer: its X-Forwarded-For is the client's own claim; one bucket for the socket address.
      expect((await call(direct.url, { 'x-forwarded-for': '198.51.100.1' })).status).toBe(200);
      expect((await call(direct.url, { 'x-forwarded-for': '198.51.100.2' })).status).toBe(429);
    } finally {
      await direct.close();
    }
    const proxied = await serve({ trustedProxies: parseTrustedProxies('127.0.0.1/32') });
    try {
      expect((await call(proxied.url, { 'x-forwarded-for': '198.51.100.1' })).status).toBe(200);
      expect((await call(proxied.url, { 'x-forwarded-for': '198.51.100.2' })).status).toBe(200);
      const again = await call(proxied.url, { 'x-forwarded-for': '198.51.100.1' });
      expect([again.status, await again.text()]).toEqual([429, 'too many call webhook requests; slow down']);
    } finally {
      await proxied.close();
    }
  });

  it('answers a CallSid identity already answered (another replica, a restart) with the one 403 and keeps it refused here', async () => {
    let minted = 0;
    const server = await serve({
      sources: new AddressBuckets(1_000, 1_000),
      mintCallToken: () => {
        minted++;
        return Promise.reject(new ConnectError('this CallSid was already answered', Code.AlreadyExists));
      },
    });
    try {
      const callSid = `CA${randomBytes(16).toString('hex')}`;
      const first = await call(server.url, {}, callSid);
      expect([first.status, await first.text()]).toEqual([403, REFUSED]);
      // This replica now remembers it: the second replay is refused without asking identity.
      expect((await call(server.url, {}, callSid)).status).toBe(403);
      expect(minted).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('passes on the person an outbound call names in its signed URL, and refuses a query the signature does not cover', async () => {
    const subjects: (string | undefined)[] = [];
    const server = await serve({
      sources: new AddressBuckets(1_000, 1_000),
      mintCallToken: (_tenant, _agent, _callSid, subjectId) => {
        subjects.push(subjectId);
        return Promise.resolve({ sessionId: randomUUID(), token: 'tok' });
      },
    });
    const post = (query: string, signedQuery: string) => {
      const params = { CallSid: `CA${randomBytes(16).toString('hex')}`, To: '+14155550123' };
      const signature = twilioSignature({ authToken, url: `${publicUrl}${path}${signedQuery}`, params });
      return fetch(`${server.url}${path}${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
        body: new URLSearchParams(params).toString(),
      });
    };
    try {
      const subject = randomUUID();
      expect((await post(`?subject=${subject}`, `?subject=${subject}`)).status).toBe(200);
      expect((await post('', '')).status).toBe(200);
      expect(subjects).toEqual([subject, undefined]);
      // A subject added to (or changed in) a URL Twilio signed without it is a bad signature.
      expect((await post(`?subject=${subject}`, '')).status).toBe(403);
      expect((await post(`?subject=${randomUUID()}`, `?subject=${subject}`)).status).toBe(403);
      const bad = await post('?subject=nope', '?subject=nope');
      expect([bad.status, await bad.text()]).toEqual([400, "the call webhook's subject is not a subject id"]);
      expect(subjects).toHaveLength(2);
    } finally {
      await server.close();
    }
  });
});
