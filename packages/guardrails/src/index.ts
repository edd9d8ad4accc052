export * from './policy-schema.js';
export * from './policy.js';
export * from './types.js';
export {
  detectPii,
  phoneDigitCounts,
  redactSpans,
  luhnValid,
  ibanValid,
  usSsnValid,
  ukNinoValid,
  abaRoutingValid,
  type PiiSpan,
  type DetectOptions,
} from './pii.js';
export * from './checker.js';
export * from './sentence-stream.js';
export * from './event-schema.js';
export * from './dry-run.js';
export { compileArgumentsSchema, type ArgumentsCheck } from './rules/tool-rules.js';
