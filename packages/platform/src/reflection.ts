import { toBinary, type DescExtension, type DescFile, type DescService } from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ConnectRouter } from '@connectrpc/connect';
import { ServerReflection as ServerReflectionV1 } from '@parley/proto/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '@parley/proto/grpc/reflection/v1alpha/reflection_pb.js';

/** REFLECTION_SERVICES are the full names of the two reflection services (v1 and the older v1alpha). */
export const REFLECTION_SERVICES: readonly string[] = [ServerReflectionV1.typeName, ServerReflectionV1alpha.typeName];

/**
 * ReflectionIndex is what the reflection service answers from: the services a server serves and
 * every file they need, keyed by file name and by each symbol's full name. It is built once from
 * the generated descriptors (protobuf-es embeds them), so nothing is read from .proto files.
 */
export interface ReflectionIndex {
  readonly services: readonly string[];
  readonly files: ReadonlyMap<string, DescFile>;
  readonly symbols: ReadonlyMap<string, DescFile>;
  /** extensions maps an extended message's full name to its known extensions. */
  readonly extensions: ReadonlyMap<string, readonly DescExtension[]>;
}

/** createReflectionIndex indexes the files of the given services and their transitive dependencies. */
export function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, DescExtension[]>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      if (type.kind === 'service') for (const m of type.methods) symbols.set(`${type.typeName}.${m.name}`, file);
      if (type.kind === 'extension') extensions.set(type.extendee.typeName, [...(extensions.get(type.extendee.typeName) ?? []), type]);
    }
    for (const dep of file.dependencies) visit(dep);
  };
  const names = new Set<string>();
  for (const s of services) {
    names.add(s.typeName);
    visit(s.file);
  }
  return { services: [...names].sort(), files, symbols, extensions };
}

/** ReflectionAnswer is the message_response of a reflection answer, the same in v1 and v1alpha. */
type ReflectionAnswer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: 'allExtensionNumbersResponse'; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

/** ReflectionQuery is the message_request of a reflection request, the same in v1 and v1alpha. */
type ReflectionQuery =
  | { case: 'fileByFilename' | 'fileContainingSymbol' | 'allExtensionNumbersOfType' | 'listServices'; value: string }
  | { case: 'fileContainingExtension'; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };

const notFound = (message: string): ReflectionAnswer => ({
  case: 'errorResponse',
  value: { errorCode: Code.NotFound, errorMessage: message },
});

/**
 * answerReflection answers one request. File answers carry the file and those of its transitive
 * dependencies not yet sent on this stream (`sent`), as the protocol allows, so a client walking a
 * large API does not receive the same dependencies again and again.
 */
export function answerReflection(index: ReflectionIndex, query: ReflectionQuery, sent: Set<string>): ReflectionAnswer {
  const withDependencies = (file: DescFile): ReflectionAnswer => {
    const out: Uint8Array[] = [toBinary(FileDescriptorProtoSchema, file.proto)];
    sent.add(file.proto.name);
    const walk = (f: DescFile) => {
      for (const dep of f.dependencies) {
        if (sent.has(dep.proto.name)) continue;
        sent.add(dep.proto.name);
        out.push(toBinary(FileDescriptorProtoSchema, dep.proto));
        walk(dep);
      }
    };
    walk(file);
    return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: out } };
  };
  switch (query.case) {
    case 'listServices':
      return { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } };
    case 'fileByFilename': {
      const file = index.files.get(query.value);
      return file === undefined ? notFound(`no file named "${query.value}" on this server`) : withDependencies(file);
    }
    case 'fileContainingSymbol': {
      const file = index.symbols.get(query.value.replace(/^\./, ''));
      return file === undefined ? notFound(`no symbol named "${query.value}" on this server`) : withDependencies(file);
    }
    case 'fileContainingExtension': {
      const ext = (index.extensions.get(query.value.containingType) ?? []).find((e) => e.number === query.value.extensionNumber);
      return ext === undefined
        ? notFound(`no extension ${query.value.extensionNumber} of "${query.value.containingType}" on this server`)
        : withDependencies(ext.file);
    }
    case 'allExtensionNumbersOfType': {
      if (!index.symbols.has(query.value)) return notFound(`no message named "${query.value}" on this server`);
      const numbers = (index.extensions.get(query.value) ?? []).map((e) => e.number);
      return { case: 'allExtensionNumbersResponse', value: { baseTypeName: query.value, extensionNumber: numbers } };
    }
    default:
      return {
        case: 'errorResponse',
        value: {
          errorCode: Code.InvalidArgument,
          errorMessage: 'set one of the message_request fields (list_services, file_by_filename, …)',
        },
      };
  }
}

/**
 * registerReflectionService adds gRPC server reflection (grpc.reflection.v1 and v1alpha) to a
 * router, describing every service registered on it so far plus reflection itself, so grpcurl,
 * buf curl, Postman and Kreya can list and call methods. Call it after the other routes.
 */
export function registerReflectionService(router: ConnectRouter): void {
  const served = new Map<string, DescService>();
  for (const h of router.handlers) served.set(h.service.typeName, h.service);
  served.set(ServerReflectionV1.typeName, ServerReflectionV1);
  served.set(ServerReflectionV1alpha.typeName, ServerReflectionV1alpha);
  const index = createReflectionIndex([...served.values()]);
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answerReflection(index, req.messageRequest, sent) };
      }
    },
  });
  router.service(ServerReflectionV1alpha, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answerReflection(index, req.messageRequest, sent) };
      }
    },
  });
}
