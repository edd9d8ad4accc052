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

/** EMBEDDED_TTS_PACKAGE is the GPL-3.0 package that holds eSpeak NG (left out of images built with EMBEDDED_TTS=false). */
export const EMBEDDED_TTS_PACKAGE = '@echogarden/espeak-ng-emscripten';

/**
 * assertEmbeddedTtsInstalled fails start-up with what to set when embedded TTS workers are asked
 * for but the eSpeak NG package is not installed (an image built without it, see THIRD_PARTY_NOTICES.md),
 * instead of workers that crash and respawn for ever.
 */
export function assertEmbeddedTtsInstalled(resolve: (specifier: string) => string = (s) => import.meta.resolve(s)): void {
  try {
    resolve(EMBEDDED_TTS_PACKAGE);
  } catch {
    throw new Error(
      `PARLEY_TTS_EMBEDDED_WORKERS is above 0 but ${EMBEDDED_TTS_PACKAGE} is not installed (an image built with EMBEDDED_TTS=false): ` +
        'set PARLEY_TTS_EMBEDDED_WORKERS=0 and give agents a TTS provider, or use an image with the embedded synthesiser',
    );
  }
}

/** EmbeddedTtsOptions bound the waiting queue and pace the respawn of a crashing worker. */
export interface EmbeddedTtsOptions {
  /** maxWaiting is how many sentences may wait for a free worker; one more fails fast (retryable). */
  readonly maxWaiting?: number;
  /** respawnMinMs is the pause before a crashed worker's replacement starts; it doubles per crash in a row. */
  readonly respawnMinMs?: number;
  /** respawnMaxMs caps that pause. */
  readonly respawnMaxMs?: number;
  /** workerUrl replaces the eSpeak worker (tests give one that crashes). */
  readonly workerUrl?: URL;
}

/**
 * EmbeddedTts is the offline default speech synthesiser: eSpeak NG compiled to WebAssembly (the
 * `@echogarden/espeak-ng-emscripten` package, which ships the engine and its voice data in the
 * package: no key, no network, no install script), in a small pool of worker threads so a
 * sentence being synthesised never blocks the event loop. Sentences queue for the next free
 * worker (at most maxWaiting of them: past that a sentence fails at once with a retryable
 * ProviderError, which the conversation reports as tts_failed, rather than queueing behind minutes
 * of audio); cancelling one stops it between eSpeak's chunks (~100 ms of audio each). A crashed
 * worker is replaced after a pause that doubles per crash in a row, so a worker that dies at start
 * does not spin a core respawning.
 */
export class EmbeddedTts {
  readonly #workers: PoolWorker[] = [];
  readonly #waiting: Job[] = [];
  readonly #maxWaiting: number;
  readonly #respawnMinMs: number;
  readonly #respawnMaxMs: number;
  readonly #workerUrl: URL;
  readonly #respawns = new Set<NodeJS.Timeout>();
  #crashesInARow = 0;
  #crashes = 0;
  #nextId = 1;
  #closed = false;

  constructor(workers = 1, options: EmbeddedTtsOptions = {}) {
    this.#maxWaiting = options.maxWaiting ?? 32;
    this.#respawnMinMs = options.respawnMinMs ?? 500;
    this.#respawnMaxMs = options.respawnMaxMs ?? 30_000;
    this.#workerUrl = options.workerUrl ?? workerUrl();
    for (let i = 0; i < workers; i++) this.#workers.push(this.#spawn());
  }

  /** crashes counts the workers that died since start (each replaced after a pause). */
  get crashes(): number {
    return this.#crashes;
  }

  #spawn(): PoolWorker {
    const worker = new Worker(this.#workerUrl);
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
        this.#crashesInARow = 0;
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
      if (at < 0) return;
      this.#workers.splice(at, 1);
      this.#crashes++;
      const pauseMs = Math.min(this.#respawnMinMs * 2 ** this.#crashesInARow, this.#respawnMaxMs);
      this.#crashesInARow++;
      const timer = setTimeout(() => {
        this.#respawns.delete(timer);
        if (this.#closed) return;
        this.#workers.push(this.#spawn());
        this.#dispatch();
      }, pauseMs);
      timer.unref();
      this.#respawns.add(timer);
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

  #dropCancelled(): void {
    for (let i = this.#waiting.length - 1; i >= 0; i--) {
      if (Atomics.load(this.#waiting[i]!.cancel, 0) === 1) this.#waiting.splice(i, 1);
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
    this.#dropCancelled();
    if (this.#waiting.length >= this.#maxWaiting) {
      throw new ProviderError(`embedded TTS is busy: ${this.#waiting.length} sentences already wait for a worker`, { retryable: true });
    }
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
    for (const timer of this.#respawns) clearTimeout(timer);
    this.#respawns.clear();
    for (const job of this.#waiting.splice(0)) job.out.fail(new ProviderError('embedded TTS is closed', { retryable: false }));
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }
}
