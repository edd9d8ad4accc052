// The OpenAI-compatible stand-in of test/openai-standin as a process of its own, for the voice
// benchmark: a real provider does not share the callers' event loop, and the stand-in's work
// (reading each uploaded WAV, writing each speech response) must not delay the timestamps the
// bench's WebSocket clients take. It answers every transcription with the text in
// BENCH_STANDIN_TRANSCRIPT and accepts only the key in BENCH_STANDIN_KEY (environment, not argv,
// so the key is not in the process list); it prints one JSON line, { baseUrl, egressEnv }, once
// it listens, and stops on SIGTERM.
//   usage: BENCH_STANDIN_KEY=… BENCH_STANDIN_TRANSCRIPT=… node bench/dist/openai-standin-process.js
import { startOpenAiStandin } from '@parley/test/openai-standin';

const apiKey = process.env.BENCH_STANDIN_KEY ?? '';
if (apiKey === '') {
  process.stderr.write('BENCH_STANDIN_KEY is required\n');
  process.exit(2);
}
const transcript = process.env.BENCH_STANDIN_TRANSCRIPT ?? 'hello there';
const standin = await startOpenAiStandin({ apiKey, chunkDelayMs: 0 });
standin.setTranscript(() => transcript);
process.stdout.write(`${JSON.stringify({ baseUrl: standin.baseUrl, egressEnv: standin.egressEnv })}\n`);
process.once('SIGTERM', () => {
  void standin.stop().then(() => process.exit(0));
});
