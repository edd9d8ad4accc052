import { describe, expect, it } from 'vitest';
import { knownNodeDefect } from './node-version.js';

describe('knownNodeDefect', () => {
  it('flags the Node releases with the HTTP/2 premature-close regression', () => {
    expect(knownNodeDefect('v24.20.0')).toContain('nodejs/node#65677');
    expect(knownNodeDefect('v24.21.0')).toContain('use Node 24.19.0');
    expect(knownNodeDefect('v26.3.1')).toContain('nodejs/node#65677');
  });

  it('passes the pinned release and earlier lines', () => {
    expect(knownNodeDefect('v24.19.0')).toBeUndefined();
    expect(knownNodeDefect('v22.12.0')).toBeUndefined();
    expect(knownNodeDefect('v26.2.0')).toBeUndefined();
  });
});
