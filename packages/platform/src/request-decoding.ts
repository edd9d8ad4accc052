import type { JsonReadOptions, JsonWriteOptions } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';

/** TextDecoderLike is the decoder shape connect's JSON serialization accepts. */
export interface TextDecoderLike {
  decode(input?: Uint8Array): string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * strictJsonOptions make connect-node refuse a JSON body that is not valid UTF-8 with
 * INVALID_ARGUMENT, where its default decoder would replace the bad bytes with U+FFFD and the
 * handler would store text the caller never sent. Binary protobuf already refuses invalid UTF-8 in
 * string fields, so both encodings now agree. connect-node hands its jsonOptions to its JSON
 * serialization, which takes the decoder from them (a test through a real server pins this).
 */
export const strictJsonOptions: Partial<JsonReadOptions & JsonWriteOptions> & { readonly textDecoder: TextDecoderLike } = {
  textDecoder: {
    decode(input?: Uint8Array): string {
      try {
        return utf8.decode(input);
      } catch {
        throw new ConnectError('the request body is not valid UTF-8; send JSON encoded as UTF-8', Code.InvalidArgument);
      }
    },
  },
};
