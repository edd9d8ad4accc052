// @parley/example-web-voice: the browser demo's customer backend (startDemoServer) and its configuration.
export * from './config.js';
export * from './server.js';
