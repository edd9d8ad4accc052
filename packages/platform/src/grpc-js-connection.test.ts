import { describe, expect, it } from 'vitest';
import { classifyConnectionError } from './grpc-js-connection.js';

describe('classifyConnectionError', () => {
  it("reads the reason from grpc-js's, Node's and OpenSSL's words, never from certificate content", () => {
    const cases: [string, string][] = [
      ['Error: connect ECONNREFUSED 10.0.0.7:7102', 'refused'],
      ['Error: connect ETIMEDOUT 10.0.0.7:7102', 'timeout'],
      ['Error: certificate has expired', 'tls'],
      ['Error: unable to verify the first certificate', 'tls'],
      ['Error: self-signed certificate in certificate chain', 'tls'],
      ['C0:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca (2026-12-02T05:00:00.000Z)', 'tls'],
      // TLS 1.3: the server refusing our certificate shows only as a close after the handshake.
      ['Failed to connect (2026-12-02T05:00:00.000Z)', 'tls'],
      ['Error: connect EHOSTUNREACH 10.0.0.7:7102', 'other'],
      ['Error: Socket closed', 'other'],
    ];
    for (const [message, reason] of cases) expect([message, classifyConnectionError(message)]).toEqual([message, reason]);
  });
});
