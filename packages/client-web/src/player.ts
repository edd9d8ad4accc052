// Playback of the agent's audio: each binary frame (PCM16 at the declared rate) becomes an
// AudioBuffer scheduled right after the previous one, so frames play gaplessly; stop() cuts
// everything scheduled at once (barge-in: the server has already stopped sending).
import { pcm16ToFloat } from './pcm.js';

/** AudioPlayer schedules PCM16 chunks on an AudioContext. */
export class AudioPlayer {
  private playing = new Set<AudioBufferSourceNode>();
  private nextTime = 0;

  constructor(
    private readonly context: AudioContext,
    private readonly sampleRate: number,
    private readonly output: AudioNode = context.destination,
  ) {}

  /** play queues samples after what is already queued (or a little ahead of now, when nothing is). */
  play(samples: Int16Array): void {
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, this.sampleRate);
    buffer.copyToChannel(pcm16ToFloat(samples) as Float32Array<ArrayBuffer>, 0);
    const node = this.context.createBufferSource();
    node.buffer = buffer;
    node.connect(this.output);
    // 40 ms of lead absorbs the jitter between frames arriving over the network.
    const start = Math.max(this.nextTime, this.context.currentTime + 0.04);
    node.start(start);
    this.nextTime = start + buffer.duration;
    this.playing.add(node);
    node.onended = () => this.playing.delete(node);
  }

  /** queuedSeconds is how much audio is scheduled but not yet played. */
  get queuedSeconds(): number {
    return Math.max(0, this.nextTime - this.context.currentTime);
  }

  /** stop silences every scheduled chunk now and forgets the queue. */
  stop(): void {
    for (const node of this.playing) {
      node.onended = null;
      try {
        node.stop();
      } catch {
        // Not started yet in some browsers' eyes: disconnecting silences it all the same.
      }
      node.disconnect();
    }
    this.playing.clear();
    this.nextTime = 0;
  }
}
