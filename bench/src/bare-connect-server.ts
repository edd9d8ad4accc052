// The second benchmark baseline: bare connect-node on an HTTP/2 TLS server with the same TLS
// setup as the kernel (client certificate required from the same CA) serving the same Echo,
// with no interceptors, so that the kernel's own cost can be told apart from connect-node's.
//   usage: node bench/dist/bare-connect-server.js <port> <cert> <key> <ca>
import { create } from '@bufbuild/protobuf';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import { EchoResponseSchema, EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';

const [port, cert, key, ca] = process.argv.slice(2) as [string, string, string, string];
const handler = connectNodeAdapter({
  routes(router) {
    router.service(EchoService, {
      echo: (req) => create(EchoResponseSchema, { message: req.message, servedBy: 'bare-connect' }),
      adminEcho: (req) => ({ message: req.message }),
    });
  },
});
const server = createSecureServer(
  { cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true },
  handler,
);
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
