import { randomBytes } from 'node:crypto';

// Operator credentials: po_ (a console or CLI bearer token), pr_ (a CLI refresh token) and pc_
// (a CLI's one-time sign-in code), each `<prefix>_<workspace id, 32 hex>_<32 random bytes,
// base64url>`. The workspace is in the token so that its row is looked up inside that workspace's
// RLS partition, never across workspaces; only HMAC-SHA256 under the pepper is stored.

/** OperatorTokenKind is the kind of an operator credential, by its prefix. */
export type OperatorTokenKind = 'po' | 'pr' | 'pc';

const PATTERN = /^(po|pr|pc)_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

/** generateOperatorToken makes a new credential of a kind for a workspace. */
export function generateOperatorToken(kind: OperatorTokenKind, tenantId: string): string {
  return `${kind}_${tenantId.replaceAll('-', '').toLowerCase()}_${randomBytes(32).toString('base64url')}`;
}

/** parseOperatorToken reads the kind and workspace of a credential; undefined when it is not one. */
export function parseOperatorToken(token: string): { kind: OperatorTokenKind; tenantId: string } | undefined {
  const m = PATTERN.exec(token);
  if (m === null) return undefined;
  const hex = m[2]!;
  return {
    kind: m[1] as OperatorTokenKind,
    tenantId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** isOperatorToken tells a po_ bearer token from an API key without the database. */
export function isOperatorToken(token: string): boolean {
  return parseOperatorToken(token)?.kind === 'po';
}
