import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { liftDbTimeouts, withTenant } from '@parley/db';
import { openSecret, sealSecret, uncachedDataKeys, type KekProvider } from '@parley/envelope';
import { UnavailableError, type Logger } from '@parley/platform';
import { DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_JWKS_TTL_MS, MAX_SESSION_TTL_SECONDS, SESSION_TOKEN_ALG } from '@parley/session-token';
import { sql, type Kysely } from 'kysely';
import type { IdentityDb, SigningKeyRow } from './db/tables.js';
import { SYSTEM_TENANT } from './system-tenant.js';

/** SigningKeyRingOptions configure SigningKeyRing. */
export interface SigningKeyRingOptions {
  readonly db: Kysely<IdentityDb>;
  readonly kek: KekProvider;
  readonly logger: Logger;
  /** rotationMs is how long a key is the signing key before a successor is made. */
  readonly rotationMs: number;
  /** reloadMs is how often each replica re-reads the keys and checks for rotation (default 60 s). */
  readonly reloadMs?: number;
}

interface LoadedKey {
  readonly kid: string;
  readonly row: SigningKeyRow;
  readonly privateKey: KeyObject;
}

/** JWKS_MAX_AGE_SECONDS is what JWKS responses tell clients to cache for (the verifier's TTL). */
export const JWKS_MAX_AGE_SECONDS = DEFAULT_JWKS_TTL_MS / 1000;

/**
 * SigningKeyRing owns the session-signing keys. Keys are Ed25519, made by this service; the
 * private half is sealed with envelope encryption (sealSecret under the configured KEK provider)
 * before it is stored, and unsealed only into this process's memory. A successor key is
 * published in the JWKS before it signs anything (activation delay longer than a replica's
 * reload plus a verifier's JWKS cache), and an old key stays published until the last token it
 * can have signed has expired. Rotation is decided under a Postgres advisory lock, so one
 * replica makes the successor.
 */
export class SigningKeyRing {
  readonly #o: SigningKeyRingOptions;
  readonly #reloadMs: number;
  readonly #activationDelayMs: number;
  #keys: LoadedKey[] = [];
  #jwks = '{"keys":[]}';
  #timer: NodeJS.Timeout | undefined;

  private constructor(options: SigningKeyRingOptions) {
    this.#o = options;
    this.#reloadMs = options.reloadMs ?? 60_000;
    this.#activationDelayMs = this.#reloadMs + DEFAULT_JWKS_TTL_MS + 30_000;
  }

  /** open makes sure a usable key exists, loads the keys and starts the reload timer. */
  static async open(options: SigningKeyRingOptions): Promise<SigningKeyRing> {
    const ring = new SigningKeyRing(options);
    await ring.tick();
    ring.#timer = setInterval(() => {
      ring.tick().catch((err: unknown) => options.logger.error({ err }, 'signing key rotation check failed; keeping current keys'));
    }, ring.#reloadMs);
    ring.#timer.unref();
    return ring;
  }

  /** tick rotates when due and reloads the keys. */
  async tick(): Promise<void> {
    await this.#rotateIfDue();
    await this.#reload();
  }

  /** close stops the timer. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /** current returns the key to sign with now: the newest active one still good for a full token lifetime. */
  current(now = Date.now()): { kid: string; privateKey: KeyObject } {
    for (const k of this.#keys) {
      if (k.row.activates_at.getTime() <= now && k.row.publish_until.getTime() - MAX_SESSION_TTL_SECONDS * 1000 > now) return k;
    }
    throw new UnavailableError('no session signing key is active yet; retry shortly', { publicMessage: true });
  }

  /** jwksJson is the public keys as a JSON Web Key Set. */
  jwksJson(): string {
    return this.#jwks;
  }

  async #rotateIfDue(): Promise<void> {
    const { db, kek, logger, rotationMs } = this.#o;
    await withTenant(db, SYSTEM_TENANT, async (trx) => {
      // The new key is sealed by Vault inside this transaction (bounded by PARLEY_VAULT_TIMEOUT_MS,
      // up to 60 s) and other replicas wait on the lock meanwhile: the role's timeouts are lifted here.
      await liftDbTimeouts(trx);
      await sql`select pg_advisory_xact_lock(hashtext('parley_identity.signing_keys'))`.execute(trx);
      // Only published keys count: a withdrawn successor (publish_until ended early) that activates
      // later than the key made in its place must not make every tick rotate again.
      const newest = await trx
        .selectFrom('signing_keys')
        .selectAll()
        .where('publish_until', '>', sql<Date>`now()`)
        .orderBy('activates_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      const now = Date.now();
      const usable =
        newest !== undefined && newest.publish_until.getTime() - MAX_SESSION_TTL_SECONDS * 1000 > now + this.#activationDelayMs;
      if (usable && newest.created_at.getTime() + rotationMs > now) return;
      // With no usable key at all (first start, or a long outage) the new key signs at once.
      const activatesAt = new Date(usable ? now + this.#activationDelayMs : now);
      const publishUntil = new Date(
        activatesAt.getTime() +
          rotationMs +
          this.#reloadMs +
          this.#activationDelayMs +
          (MAX_SESSION_TTL_SECONDS + DEFAULT_CLOCK_SKEW_SECONDS) * 1000 +
          300_000,
      );
      const kid = `sk_${new Date(now).toISOString().slice(0, 10).replaceAll('-', '')}_${randomBytes(9).toString('base64url')}`;
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const der = privateKey.export({ format: 'der', type: 'pkcs8' });
      try {
        const sealed = await sealSecret(kek, { tenantId: SYSTEM_TENANT, secretId: `signing-key:${kid}`, version: 1 }, der);
        await trx
          .insertInto('signing_keys')
          .values({
            kid,
            public_jwk: JSON.stringify({ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: SESSION_TOKEN_ALG }),
            private_ciphertext: sealed.ciphertext,
            private_nonce: sealed.nonce,
            wrapped_data_key: sealed.wrappedDataKey,
            kek_version: sealed.kekVersion,
            activates_at: activatesAt,
            publish_until: publishUntil,
          })
          .execute();
      } finally {
        der.fill(0);
      }
      logger.info(
        { kid, activates_at: activatesAt.toISOString(), publish_until: publishUntil.toISOString() },
        'session signing key created',
      );
    });
  }

  async #reload(): Promise<void> {
    const rows = await withTenant(this.#o.db, SYSTEM_TENANT, (trx) =>
      trx
        .selectFrom('signing_keys')
        .selectAll()
        .where('publish_until', '>', sql<Date>`now()`)
        .orderBy('activates_at', 'desc')
        .execute(),
    );
    const known = new Map(this.#keys.map((k) => [k.kid, k]));
    const keys: LoadedKey[] = [];
    for (const row of rows) {
      const existing = known.get(row.kid);
      if (existing !== undefined) {
        keys.push(existing);
        continue;
      }
      const der = await openSecret(
        uncachedDataKeys(this.#o.kek),
        { tenantId: SYSTEM_TENANT, secretId: `signing-key:${row.kid}`, version: 1 },
        {
          ciphertext: row.private_ciphertext,
          nonce: row.private_nonce,
          wrappedDataKey: row.wrapped_data_key,
          kekVersion: row.kek_version,
        },
      );
      try {
        keys.push({ kid: row.kid, row, privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) });
      } finally {
        der.fill(0);
      }
    }
    this.#keys = keys;
    this.#jwks = JSON.stringify({ keys: rows.map((r) => r.public_jwk) });
  }
}
