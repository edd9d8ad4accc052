// The AudioWorklet processor of the microphone: it runs on the audio thread and posts the first
// channel's samples to the page in batches of 512 (about 11 ms at 48 kHz); resampling and framing
// happen on the page (microphone.ts), so this file stays tiny. Loaded with
// audioWorklet.addModule(new URL('./capture-worklet.js', import.meta.url)).

// The AudioWorkletGlobalScope's names (TypeScript ships no lib for it).
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}
declare function registerProcessor(name: string, processor: new () => AudioWorkletProcessor): void;

const BATCH = 512;

/** CaptureProcessor posts Float32Array batches of the input's first channel. */
class CaptureProcessor extends AudioWorkletProcessor {
  private batch = new Float32Array(BATCH);
  private filled = 0;

  process(inputs: Float32Array[][]): boolean {
    const channel = inputs[0]?.[0];
    if (channel === undefined) return true;
    let at = 0;
    while (at < channel.length) {
      const n = Math.min(BATCH - this.filled, channel.length - at);
      this.batch.set(channel.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === BATCH) {
        this.port.postMessage(this.batch, [this.batch.buffer]);
        this.batch = new Float32Array(BATCH);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor('parley-capture', CaptureProcessor);

// A module, so that the declarations above stay local to this file.
export {};
