import { createHmac } from 'node:crypto';
import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { sql } from 'kysely';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { RETENTION_CLASSES, type Subject, type TenantDataDb } from './db/tables.js';
import { parseInput } from './validate.js';

type Trx = TenantTransaction<TenantDataDb>;

/** MIN_PEPPER_BYTES is the shortest pepper accepted for contact hashes (HMAC-SHA256 key). */
export const MIN_PEPPER_BYTES = 32;

/**
 * normalizePhone reduces a phone number to E.164 (+ and 7-15 digits) so that spellings of one
 * number hash alike: separators are dropped, then libphonenumber's canonical form is taken where it
 * can parse the number, so a kept trunk zero (+4402012345678) or a repeated country code
 * (+114155550123) is the same person as +442012345678 or +14155550123 (the voice-orchestrator
 * dials the same canonical form).
 */
export function normalizePhone(phone: string): string {
  const compact = phone.replace(/[\s().-]/g, '');
  if (!/^\+[1-9]\d{6,14}$/.test(compact)) {
    throw new InvalidArgumentError('phone must be in international form, e.g. +4915112345678', { field: 'phone' });
  }
  return parsePhoneNumberFromString(compact)?.number ?? compact;
}

/** normalizeEmail trims and lower-cases an address and checks its rough shape. */
export function normalizeEmail(email: string): string {
  const normal = email.trim().toLowerCase();
  if (normal.length > 254 || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(normal)) {
    throw new InvalidArgumentError('email must be an address such as user@example.com (at most 254 characters)', { field: 'email' });
  }
  return normal;
}

/**
 * contactHash is the keyed hash stored for look-up: HMAC-SHA256 under a pepper that lives in
 * the service's configuration, not in the database, so a stolen table cannot be reversed by
 * hashing every phone number. The kind is part of the message so a phone and an e-mail never
 * collide.
 */
export function contactHash(kind: 'phone' | 'email', normalized: string, pepper: Uint8Array): Buffer {
  if (pepper.byteLength < MIN_PEPPER_BYTES) {
    throw new FailedPreconditionError(`the subject look-up pepper must be at least ${MIN_PEPPER_BYTES} bytes`);
  }
  return createHmac('sha256', pepper).update(`${kind}:${normalized}`).digest();
}

/** NewSubject is what createSubject accepts; phone and email are hashed, never stored. */
export interface NewSubject {
  externalRef?: string;
  phone?: string;
  email?: string;
  retentionClass?: (typeof RETENTION_CLASSES)[number];
}

const newSubjectSchema = z
  .strictObject({
    externalRef: z.string().trim().min(1).max(200).optional(),
    phone: z.string().max(64).optional(),
    email: z.string().max(254).optional(),
    retentionClass: z.enum(RETENTION_CLASSES).default('subject_profile'),
  })
  .refine(
    (s) => s.externalRef !== undefined || s.phone !== undefined || s.email !== undefined,
    'give at least one of externalRef, phone, email',
  );

/**
 * createSubject records an end user by external reference and keyed hashes of phone and e-mail.
 * Given a phone number alone it finds or records that number's subject (subjectOfNumber): callers
 * that meet a number at once (two calls from one person) all get the same subject, where a plain
 * insert answered the later ones ALREADY_EXISTS. Anything else that names a recorded subject's
 * reference, number or address is ALREADY_EXISTS.
 */
export async function createSubject(trx: Trx, input: NewSubject, pepper: Uint8Array): Promise<Subject> {
  const s = parseInput(newSubjectSchema, input);
  const phoneHash = s.phone === undefined ? null : contactHash('phone', normalizePhone(s.phone), pepper);
  if (phoneHash !== null && s.externalRef === undefined && s.email === undefined) return subjectOfNumber(trx, phoneHash, s.retentionClass);
  return trx
    .insertInto('subjects')
    .values({
      id: uuidv7(),
      external_ref: s.externalRef ?? null,
      phone_hash: phoneHash,
      email_hash: s.email === undefined ? null : contactHash('email', normalizeEmail(s.email), pepper),
      retention_class: s.retentionClass,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** findSubjectByContact looks a subject up by phone or e-mail (through the keyed hash). */
export async function findSubjectByContact(trx: Trx, contact: { phone: string } | { email: string }, pepper: Uint8Array): Promise<Subject> {
  const [column, hash] =
    'phone' in contact
      ? (['phone_hash', contactHash('phone', normalizePhone(contact.phone), pepper)] as const)
      : (['email_hash', contactHash('email', normalizeEmail(contact.email), pepper)] as const);
  const row = await trx.selectFrom('subjects').selectAll().where(column, '=', hash).executeTakeFirst();
  if (row === undefined) throw new NotFoundError('no subject with this contact');
  return row;
}

/** findSubjectByExternalRef looks a subject up by the customer's own reference. */
export async function findSubjectByExternalRef(trx: Trx, externalRef: string): Promise<Subject> {
  const ref = parseInput(z.string().trim().min(1).max(200), externalRef, 'external_ref');
  const row = await trx.selectFrom('subjects').selectAll().where('external_ref', '=', ref).executeTakeFirst();
  if (row === undefined) throw new NotFoundError('no subject with this external reference');
  return row;
}

/** getSubject returns a subject by id; another tenant's is NotFound. */
export async function getSubject(trx: Trx, subjectId: string): Promise<Subject> {
  const id = requireUuid(subjectId, 'subject_id');
  const row = await trx.selectFrom('subjects').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`subject ${id} not found`);
  return row;
}

/** listSubjects pages through the tenant's subjects in creation order. */
export async function listSubjects(trx: Trx, page: PageRequest = {}): Promise<Page<Subject>> {
  return paginate(trx.selectFrom('subjects').selectAll(), page, { list: 'subjects', column: 'id', type: 'string' });
}

/**
 * subjectOfNumber returns the subject of a phone number, recording one when there is none: insert
 * unless the number is known, then read the row that is. A concurrent call recording the same
 * number makes the insert wait for its commit and do nothing, so every caller gets the one subject
 * (createSubject by phone, setDoNotContact of an unknown number).
 */
async function subjectOfNumber(
  trx: Trx,
  phoneHash: Buffer,
  retentionClass: (typeof RETENTION_CLASSES)[number] = 'subject_profile',
): Promise<Subject> {
  const inserted = await trx
    .insertInto('subjects')
    .values({ id: uuidv7(), phone_hash: phoneHash, retention_class: retentionClass })
    .onConflict((oc) => oc.columns(['tenant_id', 'phone_hash']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted !== undefined) return inserted;
  // The conflicting row is committed (the insert waited for it): this statement's snapshot sees it.
  return trx.selectFrom('subjects').selectAll().where('phone_hash', '=', phoneHash).executeTakeFirstOrThrow();
}

/**
 * setDoNotContact puts a person (by id, or by phone number) on the do-not-contact list or takes
 * them off it; putting an unknown number on the list records it as a subject first, so the next
 * call to it is refused. Putting someone on again keeps the first time; NOT_FOUND for an unknown
 * id, or an unknown number taken off.
 */
export async function setDoNotContact(
  trx: Trx,
  who: { subjectId: string } | { phone: string },
  doNotContact: boolean,
  pepper: Uint8Array,
): Promise<Subject> {
  let subjectId: string;
  if ('subjectId' in who) subjectId = requireUuid(who.subjectId, 'subject_id');
  else {
    const phoneHash = contactHash('phone', normalizePhone(who.phone), pepper);
    const known = await trx.selectFrom('subjects').select('id').where('phone_hash', '=', phoneHash).executeTakeFirst();
    if (known !== undefined) subjectId = known.id;
    else if (!doNotContact) throw new NotFoundError('no subject has this phone number, so it is not on the do-not-contact list');
    else subjectId = (await subjectOfNumber(trx, phoneHash)).id;
  }
  const row = await trx
    .updateTable('subjects')
    .set({ do_not_contact_at: doNotContact ? sql<Date>`coalesce(do_not_contact_at, now())` : null, updated_at: new Date() })
    .where('id', '=', subjectId)
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`subject ${subjectId} not found`);
  return row;
}
