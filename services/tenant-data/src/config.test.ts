import { ConfigError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { loadTenantDataConfig } from './config.js';

const pepper = Buffer.alloc(32, 1).toString('base64');
const url = 'postgres://parley_tenant_data:s3cret-pw@db:5432/parley';

describe('loadTenantDataConfig', () => {
  it('reads the database URL, pool size and pepper', () => {
    const config = loadTenantDataConfig({ DATABASE_URL: url, PARLEY_SUBJECT_HASH_PEPPER: pepper, PARLEY_DB_POOL_MAX: '4' });
    expect([config.databaseUrl, config.dbPoolMax, config.subjectHashPepper.byteLength]).toEqual([url, 4, 32]);
  });

  it('names the missing or bad variable and never echoes a secret', () => {
    const attempts: [Record<string, string>, string][] = [
      [{ PARLEY_SUBJECT_HASH_PEPPER: pepper }, 'DATABASE_URL'],
      [{ DATABASE_URL: 'mysql://u:s3cret-pw@db/x', PARLEY_SUBJECT_HASH_PEPPER: pepper }, 'DATABASE_URL'],
      [{ DATABASE_URL: 'not a url s3cret-pw', PARLEY_SUBJECT_HASH_PEPPER: pepper }, 'DATABASE_URL'],
      [{ DATABASE_URL: url }, 'PARLEY_SUBJECT_HASH_PEPPER'],
      [{ DATABASE_URL: url, PARLEY_SUBJECT_HASH_PEPPER: Buffer.alloc(16, 1).toString('base64') }, 'PARLEY_SUBJECT_HASH_PEPPER'],
      [{ DATABASE_URL: url, PARLEY_SUBJECT_HASH_PEPPER: 'not base64 s3cret-pw!' }, 'PARLEY_SUBJECT_HASH_PEPPER'],
    ];
    for (const [env, variable] of attempts) {
      let caught: unknown;
      try {
        loadTenantDataConfig(env);
      } catch (err) {
        caught = err;
      }
      expect(caught, variable).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).variable).toBe(variable);
      expect((caught as Error).message).not.toContain('s3cret-pw');
    }
  });
});
