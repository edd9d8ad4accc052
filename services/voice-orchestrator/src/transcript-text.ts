import { formatSealedText, transcriptPurpose } from '@parley/conversation';
import type { Peers } from './peers.js';

/** sealTranscriptText encrypts a redacted turn for the conversation's subject (stored form: @parley/conversation). */
export async function sealTranscriptText(
  peers: Pick<Peers, 'sealForSubject'>,
  tenantId: string,
  subjectId: string,
  conversationId: string,
  text: string,
): Promise<string> {
  return formatSealedText(await peers.sealForSubject(tenantId, subjectId, transcriptPurpose(conversationId), text));
}
