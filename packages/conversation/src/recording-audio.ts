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

/** RecordingTooLongError is a recording whose frames lay out longer than its reader allows (its stored duration, or what one answer may hold). */
export class RecordingTooLongError extends Error {
  /** maxLength is the most samples per track the reader allowed. */
  readonly maxLength: number;

  constructor(maxLength: number) {
    super(`the recording's frames lay out past ${maxLength} samples`);
    this.name = 'RecordingTooLongError';
    this.maxLength = maxLength;
  }
}

/** recordingSampleRate is the sample rate a recording's plaintext declares in its header. */
export function recordingSampleRate(plaintext: Uint8Array): number {
  const bytes = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 4).equals(MAGIC)) throw new Error('not a recording in format PRA1');
  return bytes.readUInt32LE(4);
}

/**
 * RECORDING_DURATION_SLACK_MS is how much longer than its stored duration a recording may lay
 * out: the duration is rounded to the millisecond, and recordings stored before the orchestrator
 * placed frames at their rounded moments lay out up to about a millisecond longer than it counted.
 */
const RECORDING_DURATION_SLACK_MS = 2;

/** recordingSamples is how many samples per track `durationMs` of a recording at `sampleRate` lays out, at most (RECORDING_DURATION_SLACK_MS included). */
export function recordingSamples(durationMs: number, sampleRate: number): number {
  return Math.ceil(((durationMs + RECORDING_DURATION_SLACK_MS) * sampleRate) / 1000);
}

/** recordingWavBytes is the most the WAV recordingWav renders of `durationMs` at `sampleRate` weighs: its header and two 16-bit channels. */
export function recordingWavBytes(durationMs: number, sampleRate: number): number {
  return wavHeader(sampleRate, 0).length + recordingSamples(durationMs, sampleRate) * 4;
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
function placeFrames(plaintext: Uint8Array, maxLength = Number.POSITIVE_INFINITY): Placed {
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
    // Checked frame by frame, before anything is allocated for the layout: a few sparse frames can name a timeline of hours.
    if (timeline.length > maxLength) throw new RecordingTooLongError(maxLength);
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

/**
 * layoutRecording lays a recording's frames out as two tracks of the same length (silence where a
 * side said nothing). With maxLength, frames that lay out longer throw RecordingTooLongError
 * before the tracks are allocated.
 */
export function layoutRecording(plaintext: Uint8Array, maxLength?: number): RecordingTracks {
  const { sampleRate, frames, length } = placeFrames(plaintext, maxLength);
  const bytes = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const tracks = [new Int16Array(length), new Int16Array(length)] as const;
  for (const f of frames) {
    const track = tracks[f.side as 0 | 1];
    for (let i = 0; i < f.count; i++) track[f.start + i] = bytes.readInt16LE(f.at + i * 2);
  }
  return { sampleRate, caller: tracks[0], agent: tracks[1], durationMs: Math.round((length * 1000) / Math.max(1, sampleRate)) };
}

/** recordingWav renders a recording's plaintext as a two-channel 16-bit WAV file: left the caller, right the agent (at most maxLength samples per track, as layoutRecording). */
export function recordingWav(plaintext: Uint8Array, maxLength?: number): Uint8Array {
  const tracks = layoutRecording(plaintext, maxLength);
  const wav = new wavefile.WaveFile();
  wav.fromScratch(2, tracks.sampleRate, '16', [tracks.caller, tracks.agent]);
  return wav.toBuffer();
}

// Streaming reads. A recording is rendered as a WAV in two passes over its plaintext, each read
// piece by piece as it is decrypted: the first places every frame (starts only, no audio kept),
// which gives the WAV's length and tells the second pass how far the audio is final at each
// frame; the second lays the samples out in a window that is sent on as soon as no later frame can
// land in it. Neither pass holds the recording whole.

/** RecordingPlan is where planRecording placed a recording's frames: enough to render it as a stream. */
export interface RecordingPlan {
  readonly sampleRate: number;
  /** length is the longer side's length in samples (the WAV's frame count). */
  readonly length: number;
  /** frames is how many frames the recording holds. */
  readonly frames: number;
  /** settled[i] is the first sample that frame i or a later one touches (length past the last): everything before it is final once frame i-1 is laid out. */
  readonly settled: Int32Array;
}

/** RecordingFrame is one frame as readRecordingFrames reads it. */
interface FrameRead {
  readonly side: number;
  readonly atMs: number;
  readonly count: number;
  /** samples are the frame's PCM (a view of a copy), present when asked for. */
  readonly samples?: Buffer;
}

/**
 * readRecordingFrames parses a recording's plaintext arriving in pieces of any size: it yields
 * the sample rate first, then each frame. A frame cut by a piece boundary is kept until whole.
 */
async function* readRecordingFrames(
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  withSamples: boolean,
): AsyncGenerator<number | FrameRead> {
  let pending = Buffer.alloc(0);
  let headerRead = false;
  for await (const piece of pieces) {
    pending = pending.length === 0 ? Buffer.from(piece) : Buffer.concat([pending, piece]);
    let at = 0;
    if (!headerRead) {
      if (pending.length < HEADER_BYTES) continue;
      if (!pending.subarray(0, 4).equals(MAGIC)) throw new Error('not a recording in format PRA1');
      yield pending.readUInt32LE(4);
      headerRead = true;
      at = HEADER_BYTES;
    }
    while (at + RECORD_HEADER_BYTES <= pending.length) {
      const side = pending.readUInt8(at);
      const count = pending.readUInt32LE(at + 5);
      if (side > 1) throw new Error('recording holds a frame of no known side');
      const end = at + RECORD_HEADER_BYTES + count * 2;
      if (end > pending.length) break;
      const atMs = pending.readUInt32LE(at + 1);
      yield withSamples ? { side, atMs, count, samples: pending.subarray(at + RECORD_HEADER_BYTES, end) } : { side, atMs, count };
      at = end;
    }
    pending = pending.subarray(at);
  }
  if (!headerRead) throw new Error('not a recording in format PRA1');
  if (pending.length > 0) throw new Error('recording truncated in a frame');
}

/** planRecording is a streamed read's first pass: it places every frame of a recording's plaintext, read in pieces, without keeping audio. */
export async function planRecording(pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<RecordingPlan> {
  let timeline: RecordingTimeline | undefined;
  let starts = new Int32Array(1024);
  let frames = 0;
  for await (const item of readRecordingFrames(pieces, false)) {
    if (typeof item === 'number') {
      timeline = new RecordingTimeline(item);
      continue;
    }
    if (frames === starts.length) {
      const grown = new Int32Array(starts.length * 2);
      grown.set(starts);
      starts = grown;
    }
    starts[frames++] = timeline!.place(item.side, item.atMs, item.count);
  }
  const length = timeline!.length;
  // settled[i] = min(start of frames i..n-1), length past the last frame.
  const settled = new Int32Array(frames + 1);
  settled[frames] = length;
  for (let i = frames - 1; i >= 0; i--) settled[i] = Math.min(starts[i]!, settled[i + 1]!);
  return { sampleRate: timeline!.sampleRate, length, frames, settled };
}

/**
 * wavHeader is the header of a two-channel 16-bit WAV of `length` sample frames. wavefile renders
 * only files held whole in memory, so its header for an empty file is taken and its two sizes (the
 * RIFF chunk's and the data chunk's, both little-endian uint32 by the RIFF format) are set to the
 * streamed audio's; the test checks the result against wavefile's rendering of the same recording.
 */
function wavHeader(sampleRate: number, length: number): Buffer {
  const empty = new wavefile.WaveFile();
  empty.fromScratch(2, sampleRate, '16', [new Int16Array(0), new Int16Array(0)]);
  const header = Buffer.from(empty.toBuffer());
  const dataAt = header.indexOf('data', 12, 'latin1');
  if (dataAt < 0 || dataAt + 8 !== header.length) throw new Error('wavefile wrote an unexpected empty WAV');
  const dataBytes = length * 4;
  header.writeUInt32LE(header.length - 8 + dataBytes, 4);
  header.writeUInt32LE(dataBytes, dataAt + 4);
  return header;
}

/**
 * recordingWavPieces is a streamed read's second pass: it yields the WAV recordingWav renders, as
 * its header and then pieces of at most maxPieceBytes, laying the plaintext (read in pieces
 * again) out on the plan's timeline and sending each stretch on as soon as no later frame can
 * land in it. It holds only that unsettled stretch, not the recording.
 */
export async function* recordingWavPieces(
  plan: RecordingPlan,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  maxPieceBytes = 64 * 1024,
): AsyncGenerator<Buffer> {
  const samplesPerPiece = Math.max(1, Math.floor(maxPieceBytes / 4));
  yield wavHeader(plan.sampleRate, plan.length);
  // The window holds samples [base, base + window length) of both tracks, interleaved later.
  let caller = new Int16Array(samplesPerPiece);
  let agent = new Int16Array(samplesPerPiece);
  let base = 0;
  let sent = 0;
  const ensure = (end: number) => {
    if (end - base <= caller.length) return;
    const size = Math.max(caller.length * 2, end - base);
    const [c, a] = [new Int16Array(size), new Int16Array(size)];
    c.set(caller);
    a.set(agent);
    caller = c;
    agent = a;
  };
  function* flush(upTo: number): Generator<Buffer> {
    while (sent < upTo) {
      const n = Math.min(samplesPerPiece, upTo - sent);
      const out = Buffer.alloc(n * 4);
      // Past the window is silence no frame reached.
      const inWindow = Math.max(0, Math.min(n, caller.length - (sent - base)));
      for (let i = 0; i < inWindow; i++) {
        out.writeInt16LE(caller[sent - base + i]!, i * 4);
        out.writeInt16LE(agent[sent - base + i]!, i * 4 + 2);
      }
      sent += n;
      yield out;
    }
    // Drop what was sent: the unsettled rest moves to the window's start.
    const drop = Math.min(sent - base, caller.length);
    caller.copyWithin(0, drop);
    agent.copyWithin(0, drop);
    caller.fill(0, caller.length - drop);
    agent.fill(0, agent.length - drop);
    base = sent;
  }
  const timeline = new RecordingTimeline(plan.sampleRate);
  let index = 0;
  for await (const item of readRecordingFrames(pieces, true)) {
    if (typeof item === 'number') {
      if (item !== plan.sampleRate) throw new Error('the recording changed between its two reads');
      continue;
    }
    if (index >= plan.frames) throw new Error('the recording changed between its two reads');
    const start = timeline.place(item.side, item.atMs, item.count);
    ensure(start + item.count);
    const track = item.side === 0 ? caller : agent;
    const samples = item.samples!;
    for (let i = 0; i < item.count; i++) track[start - base + i] = samples.readInt16LE(i * 2);
    index++;
    const settled = plan.settled[index]!;
    if (settled - sent >= samplesPerPiece) yield* flush(settled - ((settled - sent) % samplesPerPiece));
  }
  if (index !== plan.frames || timeline.length !== plan.length) throw new Error('the recording changed between its two reads');
  yield* flush(plan.length);
}
