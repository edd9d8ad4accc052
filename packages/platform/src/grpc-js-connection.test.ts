import { describe, expect, it } from 'vitest';
import { connectivityState } from '@grpc/grpc-js';
import { classifyConnectionError, ConnectionWatch } from './grpc-js-connection.js';

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
      // A peer going away mid-handshake is an outage, though Node's words name TLS.
      ['Error: Client network socket disconnected before secure TLS connection was established', 'other'],
      ['Error: read ECONNRESET', 'other'],
    ];
    for (const [message, reason] of cases) expect([message, classifyConnectionError(message)]).toEqual([message, reason]);
  });
});

describe('ConnectionWatch', () => {
  it('takes a close right after the handshake for a refused certificate only when it repeats, and a reset never', () => {
    const watch = new ConnectionWatch('unit-peer');
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Failed to connect (2026-12-02T05:00:00.000Z)');
    expect(watch.failure?.reason).toBe('other');
    expect(watch.misconfigured).toBeUndefined();
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Failed to connect (2026-12-02T05:00:01.000Z)');
    expect(watch.failure?.reason).toBe('tls');
    expect(watch.misconfigured?.detail).toMatch(/client certificate/);
    // A connection made ends the run; a reset mid-handshake afterwards is an outage again.
    watch.reported(connectivityState.READY, null);
    expect(watch.failure).toBeUndefined();
    watch.reported(
      connectivityState.TRANSIENT_FAILURE,
      'Error: Client network socket disconnected before secure TLS connection was established',
    );
    expect(watch.failure?.reason).toBe('other');
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Failed to connect (2026-12-02T05:00:02.000Z)');
    expect(watch.misconfigured).toBeUndefined();
    // A reset between two closes (the server's close racing the HTTP/2 preface) does not end the run.
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Error: read ECONNRESET');
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Failed to connect (2026-12-02T05:00:03.000Z)');
    expect(watch.misconfigured?.reason).toBe('tls');
    // A peer really gone does.
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Error: connect ECONNREFUSED 127.0.0.1:7102');
    watch.reported(connectivityState.TRANSIENT_FAILURE, 'Failed to connect (2026-12-02T05:00:04.000Z)');
    expect(watch.misconfigured).toBeUndefined();
  });
});
