// Text Postgres cannot store (a NUL character, escapes jsonb refuses) is the caller's mistake:
// mapDatabaseError turns the server's SQLSTATE into INVALID_ARGUMENT, a backstop behind the
// kernel's request validation (which refuses NUL in any request string field before a handler runs).
import { mapDatabaseError } from '@parley/db';
import { InvalidArgumentError } from '@parley/platform';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool } from '../src/pg.js';

let pool: pg.Pool;

beforeAll(() => {
  pool = adminPool(1);
});

afterAll(async () => {
  await pool.end();
});

const failure = (text: string, params: unknown[]) =>
  pool.query(text, params).then(
    () => undefined,
    (err: unknown) => err,
  );

describe('mapDatabaseError on text Postgres cannot store', () => {
  it('maps a NUL in a text parameter (SQLSTATE 22021) to INVALID_ARGUMENT without echoing the value', async () => {
    const err = await failure('select $1::text as t', ['secret-ish\u0000value']);
    expect((err as { code?: string }).code).toBe('22021');
    const mapped = mapDatabaseError(err);
    expect(mapped).toBeInstanceOf(InvalidArgumentError);
    expect((mapped as Error).message).toMatch(/NUL|U\+0000/);
    expect((mapped as Error).message).not.toContain('secret-ish');
  });

  it('maps a \\u0000 escape in jsonb (SQLSTATE 22P05) to INVALID_ARGUMENT', async () => {
    const err = await failure('select $1::jsonb as j', ['{"a":"x\\u0000y"}']);
    expect((err as { code?: string }).code).toBe('22P05');
    expect(mapDatabaseError(err)).toBeInstanceOf(InvalidArgumentError);
  });
});
