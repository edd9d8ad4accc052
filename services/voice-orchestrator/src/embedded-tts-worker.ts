// The worker thread of the embedded TTS: eSpeak NG (compiled to WebAssembly with Emscripten)
// synthesises synchronously, about as long as the speech it makes on a loaded machine, so it runs
// here and not on the event loop that serves the session port. Chunks are posted as eSpeak
// produces them; a shared flag lets the main thread cancel a sentence between chunks.
// (This file runs as the worker's entry; it is plain enough for Node's type stripping in tests.)
import { parentPort } from 'node:worker_threads';

/** SynthRequest is a sentence to speak; cancel[0] becomes 1 when the main thread no longer wants it. */
interface SynthRequest {
  readonly id: number;
  readonly text: string;
  readonly voice: string;
  readonly cancel: Int32Array;
}

const port = parentPort;
if (port === null) throw new Error('embedded-tts-worker runs as a worker thread');
const { default: init } = await import('@echogarden/espeak-ng-emscripten');
const engine = new (await init()).eSpeakNGWorker();
let voice = '';
port.postMessage({ type: 'ready', sampleRate: engine.get_samplerate() });
port.on('message', (req: SynthRequest) => {
  try {
    if (req.voice !== voice) {
      engine.set_voice(req.voice);
      voice = req.voice;
    }
    engine.synthesize(req.text, (samples) => {
      if (samples !== undefined && samples.length > 0)
        port.postMessage({ type: 'chunk', id: req.id, samples }, [samples.buffer as ArrayBuffer]);
      // eSpeak stops the sentence when the callback returns true (1).
      return Atomics.load(req.cancel, 0) === 1;
    });
    port.postMessage({ type: 'done', id: req.id });
  } catch (err) {
    port.postMessage({ type: 'failed', id: req.id, message: err instanceof Error ? err.message : 'synthesis failed' });
  }
});
