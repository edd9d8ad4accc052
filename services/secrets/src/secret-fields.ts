import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { InvalidArgumentError } from '@parley/platform';
import { SecretMetadataSchema, type SecretMetadata } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { SecretRow } from './db/tables.js';

// Field rules and mappings shared by the secrets handlers (service.ts, webhook-secret.service.ts).

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,100}$/;
const HINT_MIN_LENGTH = 12;

/** hintOf is the last four characters of a value, or "" for values too short to show any of. */
export function hintOf(value: string): string {
  const chars = Array.from(value);
  return chars.length >= HINT_MIN_LENGTH ? chars.slice(-4).join('') : '';
}

/** validateName checks a secret's name: unique in the tenant, 1-100 of [A-Za-z0-9._-]. */
export function validateName(name: string): string {
  if (!NAME_PATTERN.test(name))
    throw new InvalidArgumentError('name must be 1-100 characters of letters, digits, ".", "_" or "-"', { field: 'name' });
  return name;
}

/** toSecretMetadata turns a secrets row into the API's metadata; there is no value to leak in it. */
export function toSecretMetadata(row: SecretRow): SecretMetadata {
  return create(SecretMetadataSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    providerKind: row.provider_kind,
    hint: row.hint,
    version: row.current_version,
    setBy: row.set_by,
    setAt: timestampFromDate(row.set_at),
    createdAt: timestampFromDate(row.created_at),
    ...(row.last_used_at === null ? {} : { lastUsedAt: timestampFromDate(row.last_used_at) }),
  });
}
