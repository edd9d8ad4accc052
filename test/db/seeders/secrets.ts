import { withTenant } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

/** seedSecrets inserts one row in every secrets table (services/secrets migrations): ciphertext stand-ins only, no plaintext. */
export async function seedSecrets(db: Kysely<unknown>, tenant: string): Promise<void> {
  await withTenant(db, tenant, async (trx) => {
    const secretId = randomUUID();
    await sql`insert into key_tenants default values`.execute(trx);
    await sql`insert into secrets (id, name, provider_kind, hint, set_by) values (${secretId}, 'openai', 'llm', 'abcd', 'member:seed')`.execute(
      trx,
    );
    await sql`insert into secret_versions (secret_id, version, ciphertext, nonce, wrapped_data_key, kek_version, created_by)
              values (${secretId}, 1, ${Buffer.alloc(32, 1)}, ${Buffer.alloc(12, 2)}, 'local:v1:AAAA', 1, 'member:seed')`.execute(trx);
    await sql`insert into subject_keys (subject_id, wrapped_key, kek_version) values (${randomUUID()}, 'local:v1:AAAA', 1)`.execute(trx);
    await sql`insert into access_events (caller, conversation_id, agent_id, secret_id, secret_version, purposes)
              values ('spiffe://parley.local/voice-orchestrator', ${randomUUID()}, ${randomUUID()}, ${secretId}, 1, '{llm}')`.execute(trx);
  });
}
