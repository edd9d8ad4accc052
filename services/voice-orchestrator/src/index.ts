// @parley/voice-orchestrator: the runtime pieces other packages and tests build on.
export * from './config.js';
export * from './conversation.js';
export * from './conversation-events.js';
export * from './conversation-keys.js';
export * from './guardrail-stage.js';
export * from './live-conversations.js';
export * from './openai-provider.js';
export * from './peers.js';
export * from './provider-fetch.js';
export * from '@parley/conversation';
export * from './providers.js';
export * from './scripted-provider.js';
export * from './sentences.js';
export * from './session-refusal.js';
export * from './session-server.js';
export * from './transcript-text.js';
export * from './webhook-event-sink.js';
