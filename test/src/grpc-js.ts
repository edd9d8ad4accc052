// A plain @grpc/grpc-js view of protobuf-es messages, for interop tests and the benchmark peer:
// grpc-js needs serialize/deserialize functions per method instead of descriptors.
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';

/** grpcJsUnary describes a unary method for grpc.makeGenericClientConstructor or Server.addService. */
export function grpcJsUnary<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O) {
  return {
    path,
    requestStream: false as const,
    responseStream: false as const,
    requestSerialize: (m: MessageInitShape<I>) => Buffer.from(toBinary(input, create(input, m))),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: MessageInitShape<O>) => Buffer.from(toBinary(output, create(output, m))),
    responseDeserialize: (b: Buffer): MessageShape<O> => fromBinary(output, b),
  };
}
