import { describe, expect, it } from 'vitest';
import { connectStreamTwiml, escapeXml } from './twilio-call-webhook.js';

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
