import { Worker } from 'node:worker_threads';
import { AsyncQueue } from './async-queue.js';
import { ProviderError, type TtsProvider } from './providers.js';

/** EMBEDDED_TTS_SAMPLE_RATE is eSpeak NG's output rate. */
export const EMBEDDED_TTS_SAMPLE_RATE = 22_050;

type WorkerMessage =
  | { type: 'ready'; sampleRate: number }
  | { type: 'chunk'; id: number; samples: Int16Array }
  | { type: 'done'; id: number }
  | { type: 'failed'; id: number; message: string };

interface Job {
  readonly id: number;
  readonly text: string;
  readonly voice: string;
  readonly cancel: Int32Array;
  readonly out: AsyncQueue<Int16Array>;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  job: Job | undefined;
}

/** workerUrl is the worker's entry next to this module (.js when built, .ts when tests run the source). */
function workerUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './embedded-tts-worker.ts' : './embedded-tts-worker.js', import.meta.url);
}

/**
 * EmbeddedTts is the offline default speech synthesiser: eSpeak NG compiled to WebAssembly (the
 * `@echogarden/espeak-ng-emscripten` package, which ships the engine and its voice data in the
 * package: no key, no network, no install script), in a small pool of worker threads so a
 * sentence being synthesised never blocks the event loop. Sentences queue for the next free
 * worker; cancelling one stops it between eSpeak's chunks (~100 ms of audio each).
 */
export class EmbeddedTts {
  readonly #workers: PoolWorker[] = [];
  readonly #waiting: Job[] = [];
  #nextId = 1;
  #closed = false;

  constructor(workers = 1) {
    for (let i = 0; i < workers; i++) this.#workers.push(this.#spawn());
  }

  #spawn(): PoolWorker {
    const worker = new Worker(workerUrl());
    worker.unref();
    const entry: PoolWorker = {
      worker,
      job: undefined,
      ready: new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
      }),
    };
    entry.ready.catch(() => undefined);
    worker.on('message', (m: WorkerMessage) => {
      const job = entry.job;
      if (m.type === 'ready' || job === undefined || m.id !== job.id) return;
      if (m.type === 'chunk') job.out.push(m.samples);
      else {
        if (m.type === 'failed') job.out.fail(new ProviderError(`embedded TTS failed: ${m.message}`, { retryable: false }));
        else job.out.close();
        entry.job = undefined;
        this.#dispatch();
      }
    });
    worker.on('error', (err) => {
      entry.job?.out.fail(new ProviderError('embedded TTS worker failed', { retryable: false, cause: err }));
      entry.job = undefined;
      const at = this.#workers.indexOf(entry);
      if (!this.#closed && at >= 0) this.#workers.splice(at, 1, this.#spawn());
      this.#dispatch();
    });
    return entry;
  }

  /** ready resolves once every worker has loaded the engine (main.ts waits for it so the first sentence is not slow). */
  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.ready));
  }

  #dispatch(): void {
    for (const w of this.#workers) {
      if (w.job !== undefined) continue;
      let job = this.#waiting.shift();
      while (job !== undefined && Atomics.load(job.cancel, 0) === 1) job = this.#waiting.shift();
      if (job === undefined) return;
      w.job = job;
      w.worker.postMessage({ id: job.id, text: job.text, voice: job.voice, cancel: job.cancel });
    }
  }

  /** provider is a TtsProvider speaking with the given eSpeak voice (e.g. "en-us"). */
  provider(voice: string): TtsProvider {
    return {
      kind: 'embedded',
      sampleRate: EMBEDDED_TTS_SAMPLE_RATE,
      synthesize: (sentence, signal) => this.#synthesize(sentence, voice, signal),
    };
  }

  async *#synthesize(text: string, voice: string, signal: AbortSignal): AsyncIterable<Int16Array> {
    if (this.#closed) throw new ProviderError('embedded TTS is closed', { retryable: false });
    signal.throwIfAborted();
    const job: Job = {
      id: this.#nextId++,
      text,
      voice,
      cancel: new Int32Array(new SharedArrayBuffer(4)),
      out: new AsyncQueue<Int16Array>(),
    };
    const cancel = () => {
      Atomics.store(job.cancel, 0, 1);
      job.out.fail(signal.reason);
    };
    signal.addEventListener('abort', cancel, { once: true });
    this.#waiting.push(job);
    this.#dispatch();
    try {
      yield* job.out;
    } finally {
      signal.removeEventListener('abort', cancel);
      // A consumer that stops early no longer wants the rest.
      Atomics.store(job.cancel, 0, 1);
    }
  }

  /** close stops the workers. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#waiting.splice(0)) job.out.fail(new ProviderError('embedded TTS is closed', { retryable: false }));
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }
}
