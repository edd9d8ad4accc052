import type { Peers } from './peers.js';

/**
 * SEALED_PREFIX marks a transcript text sealed under the subject's data key (secrets
 * EncryptForSubject). The rest is base64 of the self-contained ciphertext; once the subject's
 * key is shredded the text can no longer be read.
 */
export const SEALED_PREFIX = 'sealed:v1:';

/** transcriptPurpose is the EncryptForSubject purpose of a conversation's turns (decrypt with the same). */
export function transcriptPurpose(conversationId: string): string {
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
  const sealed = await peers.sealForSubject(tenantId, subjectId, transcriptPurpose(conversationId), text);
  return `${SEALED_PREFIX}${Buffer.from(sealed).toString('base64')}`;
}
