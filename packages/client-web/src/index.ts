// @parley/client-web: Parley's browser SDK. One conversation on the session port with a session
// token (ParleyVoiceClient), with its microphone capture, agent-audio playback and PCM helpers.
export * from './client.js';
export * from './emitter.js';
export * from './microphone.js';
export * from './pcm.js';
export * from './player.js';
export * from './protocol.js';
