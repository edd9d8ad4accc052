// h2-retention: how much of each HTTP/2 call a plain node:http2 server (no grpc-js, no Parley code)
// still holds at a young-generation GC. The server answers each stream with respond + one 5-byte DATA
// frame + sendTrailers; one closed-loop client runs in another process; the server runs under
// --trace-gc-nvp, and the figure is V8's new_space_survived (and promoted) summed over the scavenges
// of a 6 s window after 2.5 s of warm-up, per call. ≈ 20 B on Node 24.0–24.14, ≈ 0.8–1.3 KB from
// 24.15.0 on (bench/README.md, "Session 10: Node 24's HTTP/2 retention, bisected").
// Run: node bench/src/h2-retention.mjs [server node binary]   (default: the node running it)
import { spawn } from 'node:child_process';
import http2 from 'node:http2';

const [mode, arg] = process.argv.slice(2);
if (mode === 'server') {
  let calls = 0;
  const server = http2.createServer().on('stream', (stream) => {
    calls++;
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.alloc(5));
  });
  server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
  setTimeout(() => console.log(`MARK ${calls}`), 2500);
  setTimeout(() => (console.log(`MARK ${calls}`), process.exit(0)), 8500);
} else if (mode === 'client') {
  const session = http2.connect(`http://127.0.0.1:${arg}`).on('error', () => process.exit(0));
  const call = () =>
    session
      .request({ ':method': 'POST', ':path': '/a.B/C' })
      .on('error', () => {})
      .on('close', call)
      .resume()
      .end(Buffer.alloc(5));
  call();
} else {
  const server = spawn(mode ?? process.execPath, ['--trace-gc-nvp', process.argv[1], 'server']);
  let out = '';
  let client;
  server.stdout.on('data', (d) => {
    out += d;
    const port = /PORT (\d+)/.exec(out);
    if (port && !client) client = spawn(process.execPath, [process.argv[1], 'client', port[1]]);
  });
  server.on('exit', () => {
    client?.kill();
    const [, first, second] = out.split(/^MARK /m); // the window: the lines between the two marks
    const calls = Number(second.split('\n')[0]) - Number(first.split('\n')[0]);
    // Node ≤ 24 prints `key=value`, Node 26 JSON: sum one field over the minor GCs (gc=s).
    const minor = first.split('\n').filter((l) => /gc(=|":")s\b/.test(l));
    const sum = (key) => minor.reduce((a, l) => a + Number(new RegExp(`\\b${key}"?[=:](\\d+)`).exec(l)?.[1] ?? 0), 0);
    const perCall = (key) => Math.round(sum(key) / calls);
    console.log(
      `${calls} calls, ${minor.length} scavenges: survived ${perCall('new_space_survived')} B/call, promoted ${perCall('promoted')} B/call`,
    );
  });
}
