import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, toConnectError, UnavailableError } from './errors.js';
import { peerError } from './peer-error.js';

describe('toConnectError', () => {
  it('cuts a message that quotes huge input to a size a gRPC header can carry, at a code point', () => {
    const key = '😀'.repeat(100_000);
    const mapped = toConnectError(new InvalidArgumentError(`secret_refs.${key}: keys must be purposes`));
    expect(mapped.code).toBe(Code.InvalidArgument);
    expect(mapped.rawMessage.length).toBeLessThan(1_100);
    expect(mapped.rawMessage).toMatch(/^secret_refs\.😀+… \(message cut at 1000 characters\)$/u);
    expect(mapped.rawMessage).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('keeps a short message as it is', () => {
    expect(toConnectError(new InvalidArgumentError('name: too long')).rawMessage).toBe('name: too long');
  });

  it('turns a peer call cut by the transport (CANCELED, ABORTED) into UNAVAILABLE, without its detail for the public', () => {
    for (const code of [Code.Canceled, Code.Aborted]) {
      const cut = new ConnectError('http/2 stream closed with error code CANCEL (0x8)', code);
      expect(toConnectError(cut).code).toBe(Code.Unavailable);
      expect(toConnectError(cut, 'public').rawMessage).toBe('a Parley service is temporarily unavailable; retry shortly');
    }
  });
});

describe('peerError', () => {
  it('treats a reset connection (ABORTED) or stream (CANCELED) as the peer being unreachable', () => {
    for (const code of [Code.Aborted, Code.Canceled, Code.Unavailable, Code.Unknown]) {
      const mapped = peerError(new ConnectError('read ECONNRESET', code), 'tenant-data', 'agent x', 'no session can be made');
      expect(mapped).toBeInstanceOf(UnavailableError);
    }
  });
});
