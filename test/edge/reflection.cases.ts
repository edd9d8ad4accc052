// gRPC server reflection (grpc.reflection.v1 and v1alpha) on the edge's public port and on an
// internal service behind mTLS, read by a plain @grpc/grpc-js client and by `buf curl`, the tool
// the README shows: services listed, file descriptors resolved into a usable schema, a method
// called through the schema reflection gave.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import {
  ServerReflectionRequestSchema as V1Request,
  ServerReflectionResponseSchema as V1Response,
} from '@parley/proto/grpc/reflection/v1/reflection_pb.js';
import {
  ServerReflectionRequestSchema as V1alphaRequest,
  ServerReflectionResponseSchema as V1alphaResponse,
} from '@parley/proto/grpc/reflection/v1alpha/reflection_pb.js';
import type { PublicStack, SharedPublicStack } from './fixture.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const buf = join(root, 'node_modules', '.bin', 'buf');
const run = promisify(execFile);

/** stack is the public stack of the file that registered these tests (set before they run). */
let stack: PublicStack;

type ReflectionResponse = MessageShape<typeof V1Response>;

/**
 * reflect opens one ServerReflectionInfo stream with a plain grpc-js client, sends the requests in
 * order and collects the answers (one per request, as the protocol says).
 */
async function reflect(
  address: string,
  credentials: grpc.ChannelCredentials,
  requests: MessageShape<typeof V1Request>['messageRequest'][],
  version: 'v1' | 'v1alpha' = 'v1',
): Promise<ReflectionResponse[]> {
  const [req, res]: [DescMessage, DescMessage] = version === 'v1' ? [V1Request, V1Response] : [V1alphaRequest, V1alphaResponse];
  const Client = grpc.makeGenericClientConstructor(
    {
      Info: {
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: unknown) => Buffer.from(toBinary(req, create(req, m as never))),
        requestDeserialize: (b: Buffer) => fromBinary(req, b),
        responseSerialize: (m: unknown) => Buffer.from(toBinary(res, create(res, m as never))),
        responseDeserialize: (b: Buffer) => fromBinary(V1Response, b),
      },
    },
    'Reflection',
  );
  const client = new Client(address, credentials) as unknown as grpc.Client & {
    Info(): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  };
  try {
    return await new Promise<ReflectionResponse[]>((resolve, reject) => {
      const call = client.Info();
      const answers: ReflectionResponse[] = [];
      call.on('data', (m: ReflectionResponse) => answers.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(answers));
      for (const messageRequest of requests) call.write({ host: '', messageRequest });
      call.end();
    });
  } finally {
    client.close();
  }
}

/** serviceNames reads a list_services answer. */
function serviceNames(answer: ReflectionResponse | undefined): string[] {
  expect(answer?.messageResponse.case).toBe('listServicesResponse');
  return answer?.messageResponse.case === 'listServicesResponse' ? answer.messageResponse.value.service.map((s) => s.name) : [];
}

/** registryOf turns a file_descriptor_response into a registry a client can encode and decode with. */
function registryOf(answer: ReflectionResponse | undefined) {
  expect(answer?.messageResponse.case).toBe('fileDescriptorResponse');
  const files = answer?.messageResponse.case === 'fileDescriptorResponse' ? answer.messageResponse.value.fileDescriptorProto : [];
  const protos = files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const byName = new Map(protos.map((p) => [p.name, p]));
  // The first file is the one asked for; the rest are its dependencies, in any order.
  return createFileRegistry(protos[0]!, (name) => byName.get(name));
}

/** reflectionCases registers the tests of gRPC server reflection, on the file's public stack. */
export function reflectionCases(shared: SharedPublicStack): void {
  beforeAll(() => {
    stack = shared.stack;
  });

  describe('gRPC server reflection', () => {
    it('lists the public services on the edge without an API key and resolves their files into a usable schema', async () => {
      const creds = grpc.credentials.createSsl(stack.ca);
      const address = stack.publicUrl.replace('https://', '');
      const [list, file, missing] = await reflect(address, creds, [
        { case: 'listServices', value: '' },
        { case: 'fileContainingSymbol', value: 'parley.api.v1.AgentService' },
        { case: 'fileContainingSymbol', value: 'parley.identity.v1.IdentityService' },
      ]);
      const names = serviceNames(list);
      expect(names).toEqual(
        expect.arrayContaining(['parley.api.v1.AgentService', 'parley.api.v1.ApiKeyService', 'grpc.reflection.v1.ServerReflection']),
      );
      // The public port describes the public API only, never an internal service.
      expect(names.filter((n) => !n.startsWith('parley.api.v1.') && !n.startsWith('grpc.reflection.'))).toEqual([]);
      const registry = registryOf(file);
      const service = registry.getService('parley.api.v1.AgentService');
      expect(service?.methods.map((m) => m.name)).toContain('ListAgents');
      // Dependencies came along: the request type and what it uses resolve.
      expect(registry.getMessage('parley.api.v1.ListAgentsRequest')).toBeDefined();
      expect(registry.getFile('google/protobuf/timestamp.proto')).toBeDefined();
      expect(missing?.messageResponse.case).toBe('errorResponse');
      expect(missing?.messageResponse.value).toMatchObject({ errorCode: grpc.status.NOT_FOUND });
    });

    it('answers the older v1alpha protocol too', async () => {
      const creds = grpc.credentials.createSsl(stack.ca);
      const [list, file] = await reflect(
        stack.publicUrl.replace('https://', ''),
        creds,
        [
          { case: 'listServices', value: '' },
          { case: 'fileByFilename', value: 'parley/api/v1/agents.proto' },
        ],
        'v1alpha',
      );
      expect(serviceNames(list)).toContain('grpc.reflection.v1alpha.ServerReflection');
      expect(registryOf(file).getService('parley.api.v1.AgentService')).toBeDefined();
    });

    it('lists an internal service behind mTLS to a peer with a certificate of the CA, and refuses one without', async () => {
      const files = stack.pki.files('audit');
      const creds = grpc.credentials.createSsl(await readFile(files.caFile), await readFile(files.keyFile), await readFile(files.certFile));
      const address = stack.urls.identity.replace('https://', '');
      const [list, file] = await reflect(address, creds, [
        { case: 'listServices', value: '' },
        { case: 'fileContainingSymbol', value: 'parley.identity.v1.IdentityService.AuthenticateApiKey' },
      ]);
      expect(serviceNames(list)).toEqual(
        expect.arrayContaining(['parley.identity.v1.IdentityService', 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection']),
      );
      expect(
        registryOf(file)
          .getService('parley.identity.v1.IdentityService')
          ?.methods.map((m) => m.name),
      ).toContain('AuthenticateApiKey');
      const withoutCert = await reflect(address, grpc.credentials.createSsl(stack.ca), [{ case: 'listServices', value: '' }]).then(
        () => 'answered',
        (e: grpc.ServiceError) => e.code,
      );
      expect(withoutCert).toBe(grpc.status.UNAVAILABLE);
    });

    it('buf curl lists the public methods and calls one with the schema from reflection', async () => {
      const ca = stack.pki.paths.caCert;
      const listed = await run(buf, ['curl', '--cacert', ca, '--list-methods', stack.publicUrl]);
      expect(listed.stdout.split('\n')).toContain('parley.api.v1.AgentService/ListAgents');
      const called = await run(buf, [
        'curl',
        '--cacert',
        ca,
        '--protocol',
        'grpc',
        '--reflect-protocol',
        'grpc-v1alpha',
        '-H',
        `Authorization: Bearer ${stack.bootstrap.apiKey}`,
        '-d',
        '{}',
        `${stack.publicUrl}/parley.api.v1.AgentService/ListAgents`,
      ]);
      expect(JSON.parse(called.stdout)).toBeTypeOf('object');
      // Internal service over mTLS, with a service certificate.
      const files = stack.pki.files('audit');
      const internal = await run(buf, [
        'curl',
        '--cacert',
        ca,
        '--cert',
        files.certFile,
        '--key',
        files.keyFile,
        '--list-services',
        stack.urls.identity,
      ]);
      expect(internal.stdout.split('\n')).toContain('parley.identity.v1.IdentityService');
    }, 60_000);
  });
}
