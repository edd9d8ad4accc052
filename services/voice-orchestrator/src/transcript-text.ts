import type { Peers } from './peers.js';

/**
 * SEALED_PREFIX marks a transcript text sealed under the subject's data key (secrets
 * EncryptForSubject). The rest is base64 of the self-contained ciphertext; once the subject's
 * key is shredded the text can no longer be read.
 */
export const SEALED_PREFIX = 'sealed:v1:';

function purposeOf(conversationId: string): string {
  return `transcript:${conversationId}`;
}

/** sealTranscriptText encrypts a redacted turn for the conversation's subject. */
export async function sealTranscriptText(
  peers: Pick<Peers, 'sealForSubject'>,
  tenantId: string,
  subjectId: string,
  conversationId: string,
  text: string,
): Promise<string> {
  const sealed = await peers.sealForSubject(tenantId, subjectId, purposeOf(conversationId), text);
  return `${SEALED_PREFIX}${Buffer.from(sealed).toString('base64')}`;
}

/** openTranscriptText decrypts a stored turn text (plain texts pass through). */
export async function openTranscriptText(
  peers: Pick<Peers, 'openForSubject'>,
  tenantId: string,
  subjectId: string | undefined,
  conversationId: string,
  stored: string,
): Promise<string> {
  if (!stored.startsWith(SEALED_PREFIX)) return stored;
  if (subjectId === undefined) throw new Error('a sealed transcript turn belongs to a conversation without a subject');
  return peers.openForSubject(tenantId, subjectId, purposeOf(conversationId), Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64'));
}
