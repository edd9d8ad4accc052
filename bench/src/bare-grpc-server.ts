// The benchmark baseline: a bare @grpc/grpc-js server with the same TLS setup as the kernel
// (server certificate, client certificate required from the same CA) serving the same Echo,
// with no authorization, tracing or logging. Run as its own process.
//   usage: node bench/dist/bare-grpc-server.js <port> <cert> <key> <ca>
import { create } from '@bufbuild/protobuf';
import { grpcJsUnary } from '@parley/test/grpc-js';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { EchoRequestSchema, EchoResponseSchema, type EchoRequest, type EchoResponse } from '@parley/proto/parley/testing/v1/echo_pb.js';

const [port, cert, key, ca] = process.argv.slice(2) as [string, string, string, string];
const server = new grpc.Server();
server.addService(
  {
    Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema),
  },
  {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, cb: grpc.sendUnaryData<EchoResponse>) => {
      cb(null, create(EchoResponseSchema, { message: call.request.message, servedBy: 'bare' }));
    },
  },
);
const creds = grpc.ServerCredentials.createSsl(
  readFileSync(ca),
  [{ cert_chain: readFileSync(cert), private_key: readFileSync(key) }],
  true,
);
server.bindAsync(`127.0.0.1:${port}`, creds, (err) => {
  if (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
