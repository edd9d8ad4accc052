// The microphone: getUserMedia (with the browser's echo cancellation, which barge-in relies on:
// the server cannot tell the agent's own voice played back by a speaker from the caller's), an
// AudioWorklet that hands its samples to the page (a ScriptProcessorNode where AudioWorklet is
// missing), then resampling to the declared rate, PCM16 and 20 ms frames.
import { FRAME_MS, floatToPcm16, PcmFramer, StreamResampler } from './pcm.js';

/** MicrophoneOptions say where the audio goes and how it is captured. */
export interface MicrophoneOptions {
  /** context is the AudioContext the capture runs in (the SDK's, resumed from a user gesture). */
  readonly context: AudioContext;
  /** sampleRate is the rate declared on the session port. */
  readonly sampleRate: number;
  /** onFrame receives each 20 ms PCM16 frame. */
  readonly onFrame: (frame: Int16Array) => void;
  /** constraints are extra audio constraints for getUserMedia (echo cancellation and noise suppression are on by default). */
  readonly constraints?: MediaTrackConstraints;
  /** workletUrl overrides where capture-worklet.js is loaded from (a bundler that moves files may need it). */
  readonly workletUrl?: string | URL;
}

/** CaptureKind is how the samples leave the audio graph: the AudioWorklet, or the deprecated ScriptProcessorNode fallback. */
export type CaptureKind = 'audio-worklet' | 'script-processor';

/** Microphone is a running capture; stop releases the device. */
export class Microphone {
  private constructor(
    private readonly stream: MediaStream,
    private readonly nodes: AudioNode[],
    /** kind is the capture path in use. */
    readonly kind: CaptureKind,
  ) {}

  /** open asks for the microphone (the browser may prompt) and starts sending frames. */
  static async open(options: MicrophoneOptions): Promise<Microphone> {
    const { context, sampleRate, onFrame } = options;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...options.constraints },
      video: false,
    });
    const resampler = new StreamResampler(context.sampleRate, sampleRate);
    const framer = new PcmFramer((sampleRate * FRAME_MS) / 1000);
    const take = (chunk: Float32Array) => {
      for (const frame of framer.push(floatToPcm16(resampler.push(chunk)))) onFrame(frame);
    };
    const source = context.createMediaStreamSource(stream);
    // A silent sink keeps the capture node in the rendered graph (browsers only process what reaches the destination).
    const sink = context.createGain();
    sink.gain.value = 0;
    sink.connect(context.destination);
    let capture: AudioNode;
    let kind: CaptureKind = 'audio-worklet';
    try {
      if (context.audioWorklet === undefined) throw new Error('no AudioWorklet');
      await context.audioWorklet.addModule(options.workletUrl ?? new URL('./capture-worklet.js', import.meta.url));
      const node = new AudioWorkletNode(context, 'parley-capture', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1 });
      node.port.onmessage = (event: MessageEvent<Float32Array>) => take(event.data);
      capture = node;
    } catch {
      // Older browsers (and pages whose policy forbids the worklet's script): the deprecated main-thread processor.
      kind = 'script-processor';
      const node = context.createScriptProcessor(2048, 1, 1);
      node.onaudioprocess = (event) => take(new Float32Array(event.inputBuffer.getChannelData(0)));
      capture = node;
    }
    source.connect(capture);
    capture.connect(sink);
    return new Microphone(stream, [source, capture, sink], kind);
  }

  /** stop disconnects the capture and releases the device (the browser's recording indicator goes out). */
  stop(): void {
    for (const node of this.nodes) node.disconnect();
    for (const track of this.stream.getTracks()) track.stop();
  }
}
