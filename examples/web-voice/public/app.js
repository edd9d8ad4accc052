// The demo page: asks its own backend for a session token, then talks to the agent over the
// session port (JSON text frames: start, user_text, assistant_text, event, error, end). It never
// sees the workspace API key.
const statusEl = document.getElementById('status');
const connectButton = document.getElementById('connect');
const transcript = document.getElementById('transcript');
const composer = document.getElementById('composer');
const input = document.getElementById('message');
const endButton = document.getElementById('end');

let socket = null;
let agentLine = null;

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

async function connect() {
  connectButton.disabled = true;
  setStatus('Asking the backend for a session token…');
  let session;
  try {
    const res = await fetch('/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    session = await res.json();
    if (!res.ok) throw new Error(session.error ?? `backend answered ${res.status}`);
  } catch (err) {
    setStatus(`Could not get a session token: ${err.message}`);
    connectButton.disabled = false;
    return;
  }
  setStatus('Connecting…');
  socket = new WebSocket(session.sessionUrl);
  socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'start', token: session.token })));
  socket.addEventListener('message', (event) => onFrame(JSON.parse(event.data)));
  socket.addEventListener('close', (event) => {
    socket = null;
    composer.hidden = true;
    connectButton.disabled = false;
    setStatus(
      event.code === 1006
        ? `Could not reach ${session.sessionUrl}. With the dev stack, open https://${new URL(session.sessionUrl).host}/ once and accept its certificate (or trust .parley/dev/certs/ca.crt).`
        : `Conversation over (${event.code}${event.reason ? `: ${event.reason}` : ''}).`,
    );
  });
}

function onFrame(frame) {
  switch (frame.type) {
    case 'ready':
      setStatus(`Connected: conversation ${frame.conversationId}.`);
      composer.hidden = false;
      input.focus();
      break;
    case 'assistant_text':
      if (agentLine === null) agentLine = add('agent', '');
      if (frame.text) agentLine.textContent = `${agentLine.textContent} ${frame.text}`.trim();
      if (frame.final) {
        agentLine.dataset.final = 'true';
        agentLine = null;
      }
      break;
    case 'event':
      add('system', `event: ${frame.name}${frame.action ? ` (${frame.action})` : ''}`);
      break;
    case 'error':
      add('system', `error: ${frame.code}: ${frame.message}`);
      break;
    case 'end':
      add('system', `ended: ${frame.reason}`);
      break;
  }
}

connectButton.addEventListener('click', () => void connect());
composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '' || socket === null) return;
  agentLine = null;
  add('user', text);
  socket.send(JSON.stringify({ type: 'user_text', text }));
  input.value = '';
});
endButton.addEventListener('click', () => socket?.send(JSON.stringify({ type: 'end' })));
