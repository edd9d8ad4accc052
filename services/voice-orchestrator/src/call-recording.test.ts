import { describe, expect, it } from 'vitest';
import { consentGiven } from './call-recording.js';

describe('consentGiven', () => {
  it('takes a plain yes, said, typed or keyed, and nothing else', () => {
    for (const yes of ['Yes', 'yes, that is fine.', 'Yeah', 'sure', 'OK', 'okay then', 'I agree', '1'])
      expect(consentGiven(yes), yes).toBe(true);
    for (const no of ['No', 'no thanks', 'yesterday I called', 'not okay', '2', '#', '', 'why?']) expect(consentGiven(no), no).toBe(false);
  });

  it('takes a yes that is qualified or taken back as a no', () => {
    for (const no of [
      'I do not agree',
      'Of course not',
      'Okay, no thanks',
      "Sure, but don't record me",
      'yes I would rather not',
      "OK I don't want that",
      'sure, without recording please',
      "yeah I won't",
    ])
      expect(consentGiven(no), no).toBe(false);
  });
});
