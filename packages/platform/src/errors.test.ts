import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, markDatabaseClientError, PUBLIC_MESSAGE_TRAILER, toConnectError, UnavailableError } from './errors.js';
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

  describe('an UNAVAILABLE for the public', () => {
    const GENERIC = 'a Parley service is temporarily unavailable; retry shortly';

    it('passes on a message written for any caller, here or relayed from a peer, and marks it between services only', () => {
      const err = new UnavailableError('Twilio could not be reached; the call was not placed, try again', { publicMessage: true });
      const internal = toConnectError(err);
      expect(internal.metadata.get(PUBLIC_MESSAGE_TRAILER)).toBe('1');
      const atEdge = toConnectError(err, 'public');
      expect(atEdge.rawMessage).toBe(err.message);
      expect(atEdge.metadata.get(PUBLIC_MESSAGE_TRAILER)).toBeNull();
      // As the edge reads it from the peer (the mark among the trailers), and as a peer relays it on.
      const fromPeer = new ConnectError(err.message, Code.Unavailable, internal.metadata);
      expect(toConnectError(fromPeer, 'public')).toMatchObject({ code: Code.Unavailable, rawMessage: err.message });
      expect(toConnectError(fromPeer, 'public').metadata.get(PUBLIC_MESSAGE_TRAILER)).toBeNull();
      expect(toConnectError(fromPeer).metadata.get(PUBLIC_MESSAGE_TRAILER)).toBe('1');
    });

    it('keeps the generic message for any other: a transport failure, a peer-unreachable or Vault error, an unmarked peer message', () => {
      const cases = [
        new ConnectError('No connection established. Last error: connect ECONNREFUSED 10.0.3.7:8443', Code.Unavailable),
        new UnavailableError('Vault\'s answer to transit/keys/parley-kek has no "data" object: is this a Vault server?'),
        new UnavailableError('tenant-data is unreachable, so the call was not placed; retry'),
        new ConnectError('secrets is unreachable at https://secrets.parley.svc:8443; retry', Code.Unavailable, new Headers({ other: '1' })),
      ];
      for (const err of cases) expect(toConnectError(err, 'public').rawMessage).toBe(GENERIC);
    });

    it('does not let the mark carry another code, or a message the relay rewrote, past the edge', () => {
      const mark = new Headers({ [PUBLIC_MESSAGE_TRAILER]: '1' });
      expect(toConnectError(new ConnectError('deadline at 10.0.3.7', Code.DeadlineExceeded, mark), 'public').rawMessage).toBe(
        'the request took too long; retry',
      );
      // A call cut by the transport is reworded around the peer's own message: never passed on.
      expect(toConnectError(new ConnectError('stream reset by 10.0.3.7', Code.Canceled, mark), 'public').rawMessage).toBe(GENERIC);
    });
  });

  // Shaped as node-postgres reports them (a DatabaseError carries the SQLSTATE in code); the real
  // ones, from Postgres, are mapped in test/db/db-timeouts.test.ts.
  function pgError(message: string, code?: string): Error {
    return Object.assign(new Error(message), code === undefined ? {} : { code, severity: 'ERROR' });
  }

  it('turns a database timeout or lost connection thrown outside withTenant into UNAVAILABLE saying to retry, not INTERNAL', () => {
    const cases: [Error, RegExp][] = [
      [
        pgError('canceling statement due to statement timeout', '57014'),
        /^the database canceled a statement that ran too long .*; retry later$/,
      ],
      [
        pgError('terminating connection due to idle-in-transaction timeout', '25P03'),
        /^the database is not accepting connections right now; retry later$/,
      ],
      // Thrown by a Postgres connection (@parley/db's DatabaseClient marks it so).
      [
        markDatabaseClientError(pgError('Client has encountered a connection error and is not queryable')),
        /^the database cannot be reached; retry later$/,
      ],
      [markDatabaseClientError(pgError('Connection terminated unexpectedly')), /^the database cannot be reached; retry later$/],
      [pgError('deadlock detected', '40P01'), /; retry it$/],
    ];
    for (const [err, message] of cases) {
      const mapped = toConnectError(err);
      expect(mapped.code, err.message).toBe(Code.Unavailable);
      expect(mapped.rawMessage).toMatch(message);
      expect(mapped.rawMessage).not.toContain(err.message);
      expect(mapped.cause).toBeUndefined();
      expect(toConnectError(err, 'public').rawMessage).toBe('a Parley service is temporarily unavailable; retry shortly');
    }
  });

  it('keeps any other error, with or without a SQLSTATE, INTERNAL', () => {
    for (const err of [
      pgError('syntax error at or near "selct"', '42601'),
      pgError('read ECONNRESET', 'ECONNRESET'),
      new Error('boom'),
      // node-postgres's words from any other library: not a lost database connection.
      new Error('Connection terminated unexpectedly'),
      new Error('Connection terminated'),
      new Error('Client was closed and is not queryable'),
    ]) {
      expect(toConnectError(err)).toMatchObject({ code: Code.Internal, rawMessage: 'internal error' });
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
