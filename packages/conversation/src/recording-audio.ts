// The plaintext of a recorded call, before it is sealed: both sides' PCM16 frames with the moment
// each was heard or said. The orchestrator writes it; tenant-data renders it as a WAV file for an
// audited read. WAV is written with wavefile, never by hand.
import wavefile from 'wavefile';

const MAGIC = Buffer.from('PRA1', 'latin1');
const HEADER_BYTES = 8;
const RECORD_HEADER_BYTES = 9;

/** RecordingSide is whose audio a frame is: the caller's (in) or the agent's (out). */
export type RecordingSide = 'caller' | 'agent';

/** recordingHeader is the plaintext's first bytes: the format and the call's sample rate. */
export function recordingHeader(sampleRate: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(sampleRate, 4);
  return header;
}

/** recordingFrame is one frame's plaintext: its side, when it was heard or said, and a copy of its samples. */
export function recordingFrame(side: RecordingSide, atMs: number, samples: Int16Array): Buffer {
  const frame = Buffer.alloc(RECORD_HEADER_BYTES + samples.byteLength);
  frame.writeUInt8(side === 'caller' ? 0 : 1, 0);
  frame.writeUInt32LE(Math.max(0, Math.round(atMs)), 1);
  frame.writeUInt32LE(samples.length, 5);
  // A copy: the caller's buffer may be reused or wiped.
  Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).copy(frame, RECORD_HEADER_BYTES);
  return frame;
}

/**
 * RecordingTimeline places frames as they are recorded, as layoutRecording will (a frame starts
 * at the moment it was heard or said, or right after that side's previous frame if that is
 * later), so a recording's duration is known without keeping its audio.
 */
export class RecordingTimeline {
  readonly sampleRate: number;
  readonly #cursor = [0, 0];

  constructor(sampleRate: number) {
    this.sampleRate = sampleRate;
  }

  /** place adds a frame of `count` samples and answers the sample it starts at. */
  place(side: number, atMs: number, count: number): number {
    const start = Math.max(Math.round((atMs * this.sampleRate) / 1000), this.#cursor[side] ?? 0);
    this.#cursor[side] = start + count;
    return start;
  }

  /** length is the longer side's length in samples. */
  get length(): number {
    return Math.max(this.#cursor[0] ?? 0, this.#cursor[1] ?? 0);
  }

  /** durationMs is how long the recording plays so far. */
  get durationMs(): number {
    return Math.round((this.length * 1000) / Math.max(1, this.sampleRate));
  }
}

/** RecordingTracks are a recording laid out on one timeline: one track per side, same length. */
export interface RecordingTracks {
  readonly sampleRate: number;
  readonly caller: Int16Array;
  readonly agent: Int16Array;
  readonly durationMs: number;
}

interface Placed {
  readonly sampleRate: number;
  readonly frames: readonly { side: number; start: number; at: number; count: number }[];
  readonly length: number;
}

/**
 * placeFrames reads the frames and places each side's on one timeline: a frame starts at the
 * moment it was heard or said, or right after that side's previous frame if that is later (the
 * agent's speech is sent a little ahead of real time, so its frames are played back to back).
 */
function placeFrames(plaintext: Uint8Array): Placed {
  const bytes = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 4).equals(MAGIC)) throw new Error('not a recording in format PRA1');
  const sampleRate = bytes.readUInt32LE(4);
  const frames: { side: number; start: number; at: number; count: number }[] = [];
  const timeline = new RecordingTimeline(sampleRate);
  for (let at = HEADER_BYTES; at < bytes.length;) {
    if (at + RECORD_HEADER_BYTES > bytes.length) throw new Error('recording truncated in a frame header');
    const side = bytes.readUInt8(at);
    const atMs = bytes.readUInt32LE(at + 1);
    const count = bytes.readUInt32LE(at + 5);
    const dataAt = at + RECORD_HEADER_BYTES;
    if (side > 1 || dataAt + count * 2 > bytes.length) throw new Error('recording truncated in a frame');
    const start = timeline.place(side, atMs, count);
    frames.push({ side, start, at: dataAt, count });
    at = dataAt + count * 2;
  }
  return { sampleRate, frames, length: timeline.length };
}

/** recordingDurationMs is how long a recording plays: its longer side, laid out as layoutRecording does. */
export function recordingDurationMs(plaintext: Uint8Array): number {
  const placed = placeFrames(plaintext);
  return Math.round((placed.length * 1000) / Math.max(1, placed.sampleRate));
}

/** layoutRecording lays a recording's frames out as two tracks of the same length (silence where a side said nothing). */
export function layoutRecording(plaintext: Uint8Array): RecordingTracks {
  const { sampleRate, frames, length } = placeFrames(plaintext);
  const bytes = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const tracks = [new Int16Array(length), new Int16Array(length)] as const;
  for (const f of frames) {
    const track = tracks[f.side as 0 | 1];
    for (let i = 0; i < f.count; i++) track[f.start + i] = bytes.readInt16LE(f.at + i * 2);
  }
  return { sampleRate, caller: tracks[0], agent: tracks[1], durationMs: Math.round((length * 1000) / Math.max(1, sampleRate)) };
}

/** recordingWav renders a recording's plaintext as a two-channel 16-bit WAV file: left the caller, right the agent. */
export function recordingWav(plaintext: Uint8Array): Uint8Array {
  const tracks = layoutRecording(plaintext);
  const wav = new wavefile.WaveFile();
  wav.fromScratch(2, tracks.sampleRate, '16', [tracks.caller, tracks.agent]);
  return wav.toBuffer();
}
