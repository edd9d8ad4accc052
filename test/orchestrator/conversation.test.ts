// Live conversations end to end: a browser-like WebSocket client with a session token minted at
// the edge talks to the voice-orchestrator process. One stack for the concerns that leave it as
// they found it, each in a file of its own (conversation-*.cases.ts, guardrails.cases.ts);
// conversation-faults.test.ts restarts the orchestrator and keeps a stack of its own.
import { apisCases } from './conversation-apis.cases.js';
import { protocolCases } from './conversation-protocol.cases.js';
import { providersCases } from './conversation-providers.cases.js';
import { turnsCases } from './conversation-turns.cases.js';
import { guardrailsCases } from './guardrails.cases.js';
import { useLiveConversations } from './live-conversation.fixture.js';

const live = useLiveConversations();

protocolCases(live);
turnsCases(live);
providersCases(live);
apisCases(live);
guardrailsCases(live);
