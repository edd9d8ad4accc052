/** VaultPolicyRule is one `path "…" { capabilities = […] }` block of a Vault ACL policy. */
export interface VaultPolicyRule {
  /** path is the Vault API path (without /v1/); may end in `*`. */
  readonly path: string;
  /** capabilities are Vault capabilities: read, update, create, delete, list, … */
  readonly capabilities: readonly string[];
  /** why is written as a comment above the block. */
  readonly why: string;
}

/** VaultPolicyScope names the transit mount and key the policy covers. */
export interface VaultPolicyScope {
  /** transitMount is the transit engine's mount path (default `transit`). */
  readonly transitMount?: string;
  /** keyName is the transit key used as the KEK (default `parley-kek`). */
  readonly keyName?: string;
  /** allowRotation adds rotate and config (min_decryption_version); default true. */
  readonly allowRotation?: boolean;
}

/**
 * secretsServiceVaultPolicy lists exactly what VaultTransitKekProvider calls: nothing else, in
 * particular no encrypt (data keys come from datakey), no export, no key deletion or trim.
 */
export function secretsServiceVaultPolicy(scope: VaultPolicyScope = {}): VaultPolicyRule[] {
  const mount = scope.transitMount ?? 'transit';
  const key = scope.keyName ?? 'parley-kek';
  const rules: VaultPolicyRule[] = [
    { path: `${mount}/datakey/plaintext/${key}`, capabilities: ['update'], why: 'a fresh data key per secret version and per subject' },
    { path: `${mount}/decrypt/${key}`, capabilities: ['update'], why: 'unwrap a stored data key' },
    { path: `${mount}/rewrap/${key}`, capabilities: ['update'], why: 'rewrap stored data keys to the newest KEK version' },
    { path: `${mount}/keys/${key}`, capabilities: ['read'], why: 'read latest_version and min_decryption_version' },
  ];
  if (scope.allowRotation ?? true) {
    rules.push(
      { path: `${mount}/keys/${key}/rotate`, capabilities: ['update'], why: 'rotate the KEK' },
      { path: `${mount}/keys/${key}/config`, capabilities: ['update'], why: 'raise min_decryption_version after a complete rewrap' },
    );
  }
  rules.push(
    {
      path: 'auth/token/renew-self',
      capabilities: ['update'],
      why: 'renew the login token before it expires (also in the default policy)',
    },
    {
      path: 'auth/token/lookup-self',
      capabilities: ['read'],
      why: 'read the TTL of a configured static token (also in the default policy)',
    },
  );
  return rules;
}

/** renderVaultPolicyHcl writes rules as the HCL a platform engineer gives to `vault policy write`. */
export function renderVaultPolicyHcl(rules: readonly VaultPolicyRule[]): string {
  return rules
    .map((rule) => `# ${rule.why}\npath "${rule.path}" {\n  capabilities = [${rule.capabilities.map((c) => `"${c}"`).join(', ')}]\n}\n`)
    .join('\n');
}
