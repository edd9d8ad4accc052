import type { DescField, DescMessage, Message } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import type { Interceptor } from '@connectrpc/connect';
import { InvalidArgumentError } from './errors.js';

/** TextFault says which string field of a request holds text Parley refuses, and why. */
export interface TextFault {
  /** path is the proto field path, e.g. `filter.actor_id`, `secret_refs["x"]`, `voice.greeting[2]`. */
  readonly path: string;
  readonly problem: 'nul' | 'unpaired-surrogate';
}

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function keyPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function textProblem(value: string): TextFault['problem'] | undefined {
  if (value.includes('\u0000')) return 'nul';
  // A lone UTF-16 surrogate (JSON "\ud800") has no UTF-8 form: forwarding it would fail to encode.
  if (UNPAIRED_SURROGATE.test(value)) return 'unpaired-surrogate';
  return undefined;
}

function checkString(value: unknown, path: string): TextFault | undefined {
  if (typeof value !== 'string') return undefined;
  const problem = textProblem(value);
  return problem === undefined ? undefined : { path, problem };
}

/** walkValue checks a google.protobuf.Value (inside a Struct), naming paths as in the JSON the caller sent. */
function walkValue(value: ReflectMessage, path: string): TextFault | undefined {
  const kind = value.desc.oneofs[0];
  if (kind === undefined) return undefined;
  const field = value.fields.find((f) => f.oneof === kind && value.isSet(f));
  if (field === undefined) return undefined;
  if (field.fieldKind === 'scalar') return checkString(value.get(field), path);
  if (field.fieldKind !== 'message') return undefined;
  const inner = value.get(field) as ReflectMessage;
  if (inner.desc.typeName === 'google.protobuf.Struct') return walkStruct(inner, path);
  if (inner.desc.typeName === 'google.protobuf.ListValue') {
    const values = inner.get(inner.fields[0]!) as Iterable<ReflectMessage>;
    let i = 0;
    for (const item of values) {
      const fault = walkValue(item, `${path}[${i}]`);
      if (fault !== undefined) return fault;
      i += 1;
    }
  }
  return undefined;
}

function walkStruct(struct: ReflectMessage, path: string): TextFault | undefined {
  const fields = struct.get(struct.fields[0]!) as ReadonlyMap<string, ReflectMessage>;
  for (const [key, value] of fields) {
    const at = keyPath(path, key);
    const keyFault = checkString(key, `${at} (the key)`);
    if (keyFault !== undefined) return keyFault;
    const fault = walkValue(value, at);
    if (fault !== undefined) return fault;
  }
  return undefined;
}

function walkMessage(message: ReflectMessage, prefix: string): TextFault | undefined {
  const typeName = message.desc.typeName;
  if (typeName === 'google.protobuf.Struct') return walkStruct(message, prefix);
  if (typeName === 'google.protobuf.Value') return walkValue(message, prefix);
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    const fault = walkField(message, field, prefix === '' ? field.name : `${prefix}.${field.name}`);
    if (fault !== undefined) return fault;
  }
  return undefined;
}

function walkField(message: ReflectMessage, field: DescField, path: string): TextFault | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return checkString(message.get(field), path);
    case 'enum':
      return undefined;
    case 'message':
      return walkMessage(message.get(field) as ReflectMessage, path);
    case 'list': {
      if (field.listKind === 'enum') return undefined;
      let i = 0;
      for (const item of message.get(field) as Iterable<unknown>) {
        const at = `${path}[${i}]`;
        const fault = field.listKind === 'message' ? walkMessage(item as ReflectMessage, at) : checkString(item, at);
        if (fault !== undefined) return fault;
        i += 1;
      }
      return undefined;
    }
    case 'map': {
      for (const [key, value] of message.get(field) as ReadonlyMap<unknown, unknown>) {
        const at = keyPath(path, String(key));
        const keyFault = checkString(key, `${at} (the key)`);
        if (keyFault !== undefined) return keyFault;
        const fault = field.mapKind === 'message' ? walkMessage(value as ReflectMessage, at) : checkString(value, at);
        if (fault !== undefined) return fault;
      }
      return undefined;
    }
  }
}

/** jsonHasBadText checks every string and key of a JSON value: how protobuf-es holds google.protobuf.Struct, Value and ListValue fields. */
function jsonHasBadText(value: unknown): boolean {
  if (typeof value === 'string') return textProblem(value) !== undefined;
  if (Array.isArray(value)) return value.some(jsonHasBadText);
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) if (textProblem(key) !== undefined || jsonHasBadText(item)) return true;
  }
  return false;
}

/** valueHasBadText checks a message-typed value: a message, or what protobuf-es unboxes one to (a wrapper's string, a Struct's JSON). */
function valueHasBadText(schema: DescMessage, value: unknown): boolean {
  if (typeof value === 'string') return textProblem(value) !== undefined;
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return false;
  if (!('$typeName' in value)) return jsonHasBadText(value);
  return messageHasBadText(schema, value as Record<string, unknown>);
}

/**
 * messageHasBadText tells whether any string of a message (every field kind, as protobuf-es holds
 * it: oneofs as {case, value}, maps as objects) holds refused text. It reads the message directly,
 * with no reflection and no paths: the common answer is no, and findTextFault then stops there.
 */
function messageHasBadText(schema: DescMessage, message: Record<string, unknown>): boolean {
  for (const field of schema.fields) {
    let value: unknown;
    if (field.oneof !== undefined) {
      const chosen = message[field.oneof.localName] as { case?: unknown; value?: unknown } | undefined;
      if (chosen?.case !== field.localName) continue;
      value = chosen.value;
    } else {
      value = message[field.localName];
    }
    if (value === undefined || value === null) continue;
    switch (field.fieldKind) {
      case 'scalar':
        if (typeof value === 'string' && textProblem(value) !== undefined) return true;
        break;
      case 'enum':
        break;
      case 'message':
        if (valueHasBadText(field.message, value)) return true;
        break;
      case 'list':
        if (field.listKind === 'enum') break;
        for (const item of value as unknown[]) {
          if (
            field.listKind === 'message'
              ? valueHasBadText(field.message, item)
              : typeof item === 'string' && textProblem(item) !== undefined
          )
            return true;
        }
        break;
      case 'map':
        for (const [key, item] of Object.entries(value as object)) {
          if (textProblem(key) !== undefined) return true;
          if (
            field.mapKind === 'message' ? valueHasBadText(field.message, item) : typeof item === 'string' && textProblem(item) !== undefined
          )
            return true;
        }
        break;
    }
  }
  return false;
}

/**
 * findTextFault walks every string of a message through the protobuf reflection API (nested
 * messages, repeated fields, map keys and values, and google.protobuf.Struct/Value contents) and
 * returns the first one holding a NUL character or an unpaired surrogate, or undefined. Bytes
 * fields are not text and are not checked. A message with no such string (nearly every request)
 * is answered by a direct read (messageHasBadText) without the reflection walk, which runs on
 * every RPC of the internal plane; the walk only names the field.
 */
export function findTextFault(schema: DescMessage, message: Message): TextFault | undefined {
  if (!messageHasBadText(schema, message as unknown as Record<string, unknown>)) return undefined;
  return walkMessage(reflect(schema, message), '');
}

/** textFaultError is the INVALID_ARGUMENT a caller gets for a TextFault: it names the field and what to remove. */
export function textFaultError(fault: TextFault): InvalidArgumentError {
  const what =
    fault.problem === 'nul'
      ? 'contains a NUL character (U+0000), which is not allowed in text; remove it'
      : 'contains an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not valid Unicode text; send well-formed text';
  return new InvalidArgumentError(`${fault.path} ${what}`, { field: fault.path });
}

/**
 * createTextFieldInterceptor refuses, with INVALID_ARGUMENT naming the field, any request whose
 * string fields hold text Postgres cannot store and peers cannot encode (NUL, unpaired
 * surrogates): one rule for every RPC of every service, before a handler or a query sees it.
 */
export function createTextFieldInterceptor(): Interceptor {
  // Not an async function: a unary call passes through without a promise of its own.
  return (next) => (req) => {
    if (!req.stream) {
      let fault: TextFault | undefined;
      try {
        fault = findTextFault(req.method.input, req.message);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return fault === undefined ? next(req) : Promise.reject(textFaultError(fault));
    }
    const messages = req.message;
    const schema = req.method.input;
    return next({
      ...req,
      message: (async function* checked() {
        for await (const m of messages) {
          const fault = findTextFault(schema, m);
          if (fault !== undefined) throw textFaultError(fault);
          yield m;
        }
      })(),
    });
  };
}
