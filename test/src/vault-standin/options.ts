// The stand-in's public types: its modes, options, minted tokens and test controls.

/** VaultStandinMode is how the stand-in answers: normally, not at all, never, or sealed. */
export type VaultStandinMode =
  /** up answers normally. */
  | 'up'
  /** down resets every connection (as if Vault's host were gone). */
  | 'down'
  /** hang accepts requests and never answers (a stuck Vault or network). */
  | 'hang'
  /** sealed answers 503 `Vault is sealed` to everything, like a sealed Vault. */
  | 'sealed';

/** VaultStandinPolicyRule is one `path` block of an ACL policy: a path (may end in `*`) and its capabilities. */
export interface VaultStandinPolicyRule {
  /** path is a Vault API path without /v1/; a trailing `*` matches any suffix, `+` one segment. */
  readonly path: string;
  /** capabilities: read (GET), update (POST/PUT), create, delete, list. */
  readonly capabilities: readonly string[];
}

/** VaultStandinOptions configure startVaultStandin; everything has a test-friendly default. */
export interface VaultStandinOptions {
  /** tokenTtlSeconds is the TTL of tokens from logins (default 3600). */
  readonly tokenTtlSeconds?: number;
  /** tokenMaxTtlSeconds caps renewals of login tokens (default 0: no cap). */
  readonly tokenMaxTtlSeconds?: number;
  /** rootToken has every capability (default: random `hvs.` token). */
  readonly rootToken?: string;
  /** transitMount is where the transit engine is mounted (default `transit`). */
  readonly transitMount?: string;
  /** keys are transit keys (aes256-gcm96) that exist at start (default `parley-secrets`). */
  readonly keys?: readonly string[];
  /** kubernetes enables Kubernetes auth: role name -> accepted JWT and policies. */
  readonly kubernetes?: {
    readonly mount?: string;
    readonly roles: Readonly<Record<string, { readonly jwt: string; readonly policies: readonly string[] }>>;
  };
  /** approle enables AppRole auth: role_id -> secret_id and policies. */
  readonly approle?: {
    readonly mount?: string;
    readonly roles: Readonly<Record<string, { readonly secretId: string; readonly policies: readonly string[] }>>;
  };
  /** policies are ACL policies by name; `root` is built in. */
  readonly policies?: Readonly<Record<string, readonly VaultStandinPolicyRule[]>>;
}

/** VaultStandinToken describes a token to mint directly with issueToken. */
export interface VaultStandinToken {
  /** ttlSeconds is the token's TTL; 0 means it never expires (like a root token). */
  readonly ttlSeconds: number;
  /** policies are attached to the token. */
  readonly policies: readonly string[];
  /** renewable tells whether renew-self may extend it (default true). */
  readonly renewable?: boolean;
  /** periodSeconds makes it a periodic token: each renewal sets the TTL to the period, whatever the increment, with no max TTL. */
  readonly periodSeconds?: number;
  /** maxTtlSeconds is its explicit max TTL (default: the stand-in's tokenMaxTtlSeconds; 0 none). */
  readonly maxTtlSeconds?: number;
}

/** VaultStandin is a running stand-in with its test controls. */
export interface VaultStandin {
  /** address is the base URL, e.g. http://127.0.0.1:41234 (port chosen by the OS). */
  readonly address: string;
  /** rootToken has every capability. */
  readonly rootToken: string;
  /** setMode switches between up, down, hang and sealed; switching away from up drops open connections. */
  setMode(mode: VaultStandinMode): void;
  /** callCount is how many requests reached a path (without /v1/), in any mode. */
  callCount(path: string): number;
  /** callCounts returns all counters by path. */
  callCounts(): ReadonlyMap<string, number>;
  /** resetCallCounts zeroes the counters. */
  resetCallCounts(): void;
  /** expireTokens makes every token except the root token expire now. */
  expireTokens(): void;
  /** refuseRenewals makes renew-self answer 403 while on (as for a revoked token). */
  refuseRenewals(on: boolean): void;
  /** issueToken mints a token directly (for static-token tests). */
  issueToken(token: VaultStandinToken): string;
  /** liveTokenCount counts tokens that have not expired. */
  liveTokenCount(): number;
  /** keyVersions reads a transit key's latest and minimum decryption version. */
  keyVersions(name: string): { latestVersion: number; minDecryptionVersion: number } | undefined;
  /** close stops the server and drops all connections. */
  close(): Promise<void>;
}
