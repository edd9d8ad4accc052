import { withTenant } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

/**
 * seedIdentity inserts one row in every identity table (services/identity migrations) with
 * minimal valid values. signing_keys and auth_failures normally live in the system partition;
 * here they get a row of the seeded tenant, which is all isolation needs.
 */
export async function seedIdentity(db: Kysely<unknown>, tenant: string): Promise<void> {
  await withTenant(db, tenant, async (trx) => {
    const memberId = randomUUID();
    await sql`insert into members (id, email, role) values (${memberId}, 'owner@example.com', 'owner')`.execute(trx);
    await sql`insert into api_keys (key_id, environment, name, secret_hash, scopes, created_by_member_id)
              values ('seedKey00001', 'test', 'seed', ${Buffer.alloc(32, 3)}, '{agents:read}', ${memberId})`.execute(trx);
    await sql`insert into sessions (id, jti, agent_id, expires_at)
              values (${randomUUID()}, ${randomUUID().replaceAll('-', '')}, ${randomUUID()}, now() + interval '5 minutes')`.execute(trx);
    await sql`insert into signing_keys (kid, public_jwk, private_ciphertext, private_nonce, wrapped_data_key, kek_version, activates_at, publish_until)
              values ('seed-kid-0001', '{"kty":"OKP","crv":"Ed25519","x":"AAAA"}', ${Buffer.alloc(48, 4)}, ${Buffer.alloc(12, 5)},
                      'local:v1:AAAA', 1, now(), now() + interval '1 day')`.execute(trx);
    await sql`insert into auth_failures (source, failures) values ('203.0.113.7', 1)`.execute(trx);
    await sql`insert into workspaces (id, name) values (${randomUUID()}, 'seed')`.execute(trx);
    await sql`insert into operator_sessions (member_id, kind, token_hash, expires_at)
              values (${memberId}, 'console', ${Buffer.alloc(32, 6)}, now() + interval '1 hour')`.execute(trx);
  });
}
