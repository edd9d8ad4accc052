// @parley/conversation: what the orchestrator, tenant-data and the edge share about
// conversations, so that no service depends on another service's package.
export * from './provider-settings.js';
export * from './transcript-text.js';
export * from './recording-audio.js';
