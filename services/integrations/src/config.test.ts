import { ConfigError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { loadIntegrationsConfig } from './config.js';

const url = 'postgres://parley_integrations:s3cret-pw@db:5432/parley';

describe('loadIntegrationsConfig', () => {
  it('defaults to port 443 and no private target', () => {
    const config = loadIntegrationsConfig({ DATABASE_URL: url });
    expect(config.egressPolicy.allowedPorts).toEqual([443]);
    expect(config.egressPolicy.allowPrivate).toEqual([]);
    expect(config.dbPoolMax).toBe(10);
    expect(config.deliveryWorker).toBe(true);
    expect(config.delivery.dbPoolMax).toBe(4);
    expect(loadIntegrationsConfig({ DATABASE_URL: url, PARLEY_WEBHOOK_DB_POOL_MAX: '8' }).delivery.dbPoolMax).toBe(8);
    expect(loadIntegrationsConfig({ DATABASE_URL: url, PARLEY_WEBHOOK_WORKER: 'off' }).deliveryWorker).toBe(false);
  });

  it('reads the operator port list and private allow-list', () => {
    const config = loadIntegrationsConfig({
      DATABASE_URL: url,
      PARLEY_EGRESS_ALLOWED_PORTS: '443, 8443',
      PARLEY_EGRESS_ALLOW_PRIVATE: '10.20.0.0/16, hooks.corp.example',
    });
    expect(config.egressPolicy.allowedPorts).toEqual([443, 8443]);
    expect(config.egressPolicy.allowPrivate.map((e) => e.kind)).toEqual(['cidr', 'host']);
  });

  it('names the bad variable and never echoes the database password', () => {
    const attempts: [Record<string, string>, string][] = [
      [{}, 'DATABASE_URL'],
      [{ DATABASE_URL: 'mysql://u:s3cret-pw@db/x' }, 'DATABASE_URL'],
      [{ DATABASE_URL: url, PARLEY_EGRESS_ALLOWED_PORTS: '443,70000' }, 'PARLEY_EGRESS_ALLOWED_PORTS'],
      [{ DATABASE_URL: url, PARLEY_EGRESS_ALLOW_PRIVATE: '10.0.0.0/40' }, 'PARLEY_EGRESS_ALLOW_PRIVATE'],
      [{ DATABASE_URL: url, PARLEY_WEBHOOK_WORKER: 'yes' }, 'PARLEY_WEBHOOK_WORKER'],
      [{ DATABASE_URL: url, PARLEY_WEBHOOK_DB_POOL_MAX: '0' }, 'PARLEY_WEBHOOK_DB_POOL_MAX'],
    ];
    for (const [env, variable] of attempts) {
      let caught: unknown;
      try {
        loadIntegrationsConfig(env);
      } catch (err) {
        caught = err;
      }
      expect(caught, variable).toBeInstanceOf(ConfigError);
      expect((caught as Error).message, variable).toContain(variable);
      expect((caught as Error).message).not.toContain('s3cret-pw');
    }
  });
});
