// The demo page: asks its own backend for a session token, then holds the conversation with the
// browser SDK (@parley/client-web, served by the backend under /sdk/): typed messages, the
// microphone once "Talk" is pressed, the agent's voice played back, transcripts and events shown.
// It never sees the workspace API key.
import { ParleyConnectionError, ParleyVoiceClient } from '/sdk/index.js';

const statusEl = document.getElementById('status');
const connectButton = document.getElementById('connect');
const transcript = document.getElementById('transcript');
const composer = document.getElementById('composer');
const input = document.getElementById('message');
const endButton = document.getElementById('end');
const voice = document.getElementById('voice');
const talkButton = document.getElementById('talk');
const meter = document.getElementById('audio-meter');

let client = null;
let agentLine = null;
let heardLine = null;
let lastAgentLine = null;

function add(kind, text) {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  transcript.append(li);
  return li;
}

function setStatus(text) {
  statusEl.textContent = text;
}

function showAudio() {
  const { audioBytesReceived, audioBytesSent } = client.stats;
  meter.dataset.received = String(audioBytesReceived);
  meter.dataset.sent = String(audioBytesSent);
  meter.textContent = `Agent audio received: ${(audioBytesReceived / 1024).toFixed(0)} KiB · microphone audio sent: ${(audioBytesSent / 1024).toFixed(0)} KiB`;
}

function onTranscript({ role, text, final }) {
  if (role === 'user') {
    // Partial results of a streaming STT update one line; the final one settles it.
    agentLine = null;
    if (heardLine === null) heardLine = add('user', '');
    heardLine.textContent = text;
    if (final) {
      heardLine.dataset.final = 'true';
      heardLine = null;
    }
    return;
  }
  if (agentLine === null) agentLine = lastAgentLine = add('agent', '');
  if (text) agentLine.textContent = `${agentLine.textContent} ${text}`.trim();
  if (final) {
    agentLine.dataset.final = 'true';
    agentLine = null;
  }
}

async function connect() {
  connectButton.disabled = true;
  // Made inside the click, so the browser lets it play the agent's voice.
  const audioContext = new AudioContext({ latencyHint: 'interactive' });
  setStatus('Asking the backend for a session token…');
  let session;
  try {
    const res = await fetch('/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    session = await res.json();
    if (!res.ok) throw new Error(session.error ?? `backend answered ${res.status}`);
  } catch (err) {
    setStatus(`Could not get a session token: ${err.message}`);
    connectButton.disabled = false;
    void audioContext.close();
    return;
  }
  setStatus('Connecting…');
  client = new ParleyVoiceClient({ sessionUrl: session.sessionUrl, token: session.token, audio: { sampleRate: 16000 }, audioContext });
  client.on('transcript', onTranscript);
  client.on('audio', showAudio);
  client.on('bargeIn', () => {
    // The SDK has already cut the agent's queued audio: what is left to play must be nothing.
    meter.dataset.queuedAfterBargeIn = String(client.queuedAudioSeconds);
    add('system', 'you interrupted the agent');
  });
  client.on('replyEnd', ({ interrupted }) => {
    if (interrupted && lastAgentLine !== null) lastAgentLine.dataset.interrupted = 'true';
  });
  client.on('event', (event) => {
    if (event.name !== 'barge_in') add('system', `event: ${event.name}${event.action ? ` (${event.action})` : ''}`);
  });
  client.on('error', ({ code, message }) => add('system', `error: ${code}: ${message}`));
  client.on('end', ({ reason }) => add('system', `ended: ${reason}`));
  client.on('microphone', ({ on, capture }) => {
    if (capture) talkButton.dataset.capture = capture;
    talkButton.textContent = on ? 'Stop talking' : 'Talk';
    talkButton.setAttribute('aria-pressed', String(on));
  });
  client.on('close', ({ code, reason }) => {
    composer.hidden = true;
    voice.hidden = true;
    connectButton.disabled = false;
    void audioContext.close();
    if (code !== 1006) setStatus(`Conversation over (${code}${reason ? `: ${reason}` : ''}).`);
  });
  try {
    const ready = await client.connect();
    setStatus(`Connected: conversation ${ready.conversationId}.`);
    composer.hidden = false;
    voice.hidden = false;
    showAudio();
    input.focus();
  } catch (err) {
    setStatus(
      err instanceof ParleyConnectionError && err.code === 1006
        ? `Could not reach ${session.sessionUrl}. With the dev stack, open https://${new URL(session.sessionUrl).host}/ once and accept its certificate (or trust .parley/dev/certs/ca.crt).`
        : `Could not start: ${err.message}`,
    );
  }
}

async function toggleTalk() {
  if (client === null) return;
  if (talkButton.getAttribute('aria-pressed') === 'true') {
    client.stopMicrophone();
    return;
  }
  try {
    await client.startMicrophone();
  } catch (err) {
    add('system', `microphone: ${err.message}`);
  }
}

connectButton.addEventListener('click', () => void connect());
talkButton.addEventListener('click', () => void toggleTalk());
composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '' || client === null) return;
  agentLine = null;
  client.sendText(text);
  input.value = '';
});
endButton.addEventListener('click', () => client?.end());
