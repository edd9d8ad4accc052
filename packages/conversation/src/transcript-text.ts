// The stored form of a transcript turn's text: plain (redacted) text, or text sealed under the
// end user's subject key. The orchestrator writes it; the edge reads it back for operators.

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

/** formatSealedText is the stored text of a turn sealed under the subject's key. */
export function formatSealedText(sealed: Uint8Array): string {
  return `${SEALED_PREFIX}${Buffer.from(sealed).toString('base64')}`;
}
