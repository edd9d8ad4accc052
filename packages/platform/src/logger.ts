import { trace } from '@opentelemetry/api';
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

/** Logger is the structured JSON logger every service uses. */
export type Logger = PinoLogger;

/**
 * REDACTED_KEYS are property names whose values are never written to a log, at any depth that
 * pino's redaction covers. Callers must still not put secrets into messages: this is a net,
 * not the rule.
 */
export const REDACTED_KEYS = [
  'apiKey',
  'api_key',
  'authorization',
  'password',
  'secret',
  'secretValue',
  'value',
  'token',
  'plaintext',
  'privateKey',
  'private_key',
  'dataKey',
  'pepper',
  'cookie',
] as const;

/** LoggerOptions configure createLogger. */
export interface LoggerOptions {
  readonly service: string;
  readonly version: string;
  readonly level: string;
  /** destination defaults to stdout; tests pass a stream to read what was logged. */
  readonly destination?: DestinationStream;
}

/** createLogger builds a JSON logger that stamps each line with the active trace and span ids. */
export function createLogger(options: LoggerOptions): Logger {
  const paths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return pino(
    {
      level: options.level,
      base: { service: options.service, version: options.version },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths, censor: '[redacted]' },
      mixin() {
        const span = trace.getActiveSpan();
        if (span === undefined) return {};
        const ctx = span.spanContext();
        return { trace_id: ctx.traceId, span_id: ctx.spanId };
      },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
