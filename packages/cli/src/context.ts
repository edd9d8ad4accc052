import { readFile } from 'node:fs/promises';
import { toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { apiKeySource, items, type PageableRequest, type PagedResponse, type ParleyClient, type TokenSource } from '@parley/client';
import { createParleyNodeClient } from '@parley/client/node';
import type { CliConfig } from './config.js';
import { MissingCredentialsError, UsageError } from './exit-codes.js';
import { outputFormatOf, render, type Column, type JsonObject, type OutputFormat } from './output.js';
import { readProfiles, type Profile } from './profile.js';
import type { SecretInput } from './secret-input.js';
import { operatorTokenSource, type Edge } from './operator-signin.js';

/** CliIo is the process's standard streams (the CLI never touches `process` outside main.ts). */
export interface CliIo extends SecretInput {
  readonly stdout: NodeJS.WriteStream;
  /** openBrowser opens a link in the person's browser (`parley login`); absent where there is none. */
  readonly openBrowser?: (url: string) => void;
}

/** GlobalOptions are the options every command takes. */
export interface GlobalOptions {
  readonly url?: string;
  readonly ca?: string;
  readonly output: string;
  readonly profile?: string;
  readonly timeout?: string;
}

/** CLI_VERSION is reported by --version and in the User-Agent the audit log records. */
export const CLI_VERSION = '0.1.0';

/**
 * tokenSourceOf turns stored credentials into the client's TokenSource: an API key as it is, an
 * operator sign-in as a source that refreshes its bearer token from the stored refresh token.
 */
export function tokenSourceOf(profile: Profile, edge: Edge, profileFile: string, profileName: string): TokenSource {
  switch (profile.credentials.kind) {
    case 'api_key':
      return apiKeySource(profile.credentials.apiKey);
    case 'oidc':
      return operatorTokenSource(edge, profileFile, profileName, profile.credentials);
  }
}

/**
 * LONG_CALL_TIMEOUT_MS is the CLI's deadline for an audit export or verification without --timeout:
 * the edge's default PARLEY_EDGE_LONG_READ_DEADLINE_MS (10 min) and a minute's margin.
 */
export const LONG_CALL_TIMEOUT_MS = 11 * 60_000;

/** CommandContext is what a command needs: the streams, the settings, the client and the output. */
export class CommandContext {
  readonly format: OutputFormat;
  private clientPromise: Promise<ParleyClient> | undefined;

  constructor(
    readonly io: CliIo,
    readonly config: CliConfig,
    readonly globals: GlobalOptions,
  ) {
    this.format = outputFormatOf(globals.output);
  }

  /**
   * longCallTimeoutMs is the per-call deadline of a call that may rightly run for minutes (an audit
   * export or verification of a long chain): --timeout when given, else LONG_CALL_TIMEOUT_MS (not
   * the 30 s default of other calls), past the edge's own bound so that bound ends it first, yet an
   * end to a call whose connection died in silence.
   */
  get longCallTimeoutMs(): number | undefined {
    return this.globals.timeout === undefined ? LONG_CALL_TIMEOUT_MS : undefined;
  }

  /** profileName is --profile, else PARLEY_PROFILE, else "default". */
  get profileName(): string {
    return this.globals.profile ?? this.config.profile;
  }

  /** profile is the stored profile in use, if any. */
  async profile(): Promise<Profile | undefined> {
    return (await readProfiles(this.config.profileFile)).profiles[this.profileName];
  }

  /** target resolves the URL and CA: flags, then PARLEY_URL / PARLEY_CA, then the profile. */
  async target(): Promise<{ url: string; caFile: string | undefined }> {
    const profile = await this.profile();
    const url = this.globals.url ?? this.config.url ?? profile?.url;
    if (url === undefined) throw new UsageError('no API URL: pass --url, set PARLEY_URL, or run parley login --url <url>');
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--url must be an http(s) URL such as https://localhost:7400, not "${url}"`);
    return { url, caFile: this.globals.ca ?? this.config.caFile ?? profile?.caFile };
  }

  /** edge is the API's URL and CA, for the sign-in endpoints (/auth/cli/*). */
  async edge(): Promise<Edge> {
    const { url, caFile } = await this.target();
    return { url, ca: await this.readCa(caFile) };
  }

  /** readCa reads the private CA file, if one is set. */
  async readCa(caFile: string | undefined): Promise<Buffer | undefined> {
    if (caFile === undefined) return undefined;
    try {
      return await readFile(caFile);
    } catch (err) {
      throw new UsageError(`cannot read the CA file ${caFile}: ${(err as Error).message}`);
    }
  }

  /** client is the API client, made on first use: PARLEY_API_KEY wins over the profile's credentials. */
  client(): Promise<ParleyClient> {
    this.clientPromise ??= (async () => {
      const { url, caFile } = await this.target();
      const profile = await this.profile();
      const ca = await this.readCa(caFile);
      const credentials =
        this.config.apiKey !== undefined
          ? apiKeySource(this.config.apiKey)
          : profile === undefined
            ? undefined
            : tokenSourceOf(
                profile,
                { url: sameOrigin(url, profile.url, this.profileName), ca },
                this.config.profileFile,
                this.profileName,
              );
      if (credentials === undefined)
        throw new MissingCredentialsError(
          `no credentials: set PARLEY_API_KEY, run parley login (operator sign-in), or store a key with: parley login --api-key-stdin (profile "${this.profileName}")`,
        );
      const timeoutMs = this.globals.timeout === undefined ? 30_000 : Number(this.globals.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of seconds`);
      return createParleyNodeClient({
        baseUrl: url,
        credentials,
        // One-shot process: HTTP/1.1 leaves no HTTP/2 session to keep it alive or to close.
        httpVersion: '1.1',
        timeoutMs,
        userAgent: `parley-cli/${CLI_VERSION}`,
        ...(ca === undefined ? {} : { ca }),
        retry: {
          onRetry: ({ attempt, delayMs }) => this.io.stderr.write(`the API is unavailable; retry ${attempt} in ${delayMs} ms\n`),
        },
      });
    })();
    return this.clientPromise;
  }

  /** print writes a result to stdout in the chosen format. */
  print(value: JsonObject | readonly JsonObject[], columns: readonly Column[]): void {
    this.io.stdout.write(render(this.format, value, columns));
  }

  /** printMessages prints a list of messages as their proto JSON (see json) in the chosen format. */
  printMessages<D extends DescMessage>(schema: D, messages: readonly MessageShape<D>[], columns: readonly Column[]): void {
    this.print(
      messages.map((m) => json(schema, m)),
      columns,
    );
  }

  /** note tells the person something on stderr (never mixed into a script's stdout). */
  note(line: string): void {
    this.io.stderr.write(`${line}\n`);
  }
}

/** json is a message's proto JSON with every field present, the shape --output json and yaml print. */
export function json<D extends DescMessage>(schema: D, message: MessageShape<D>): JsonObject {
  return toJson(schema, message, { alwaysEmitImplicit: true }) as JsonObject;
}

/** Limit is a parsed --limit: how many items to read, and the page size to ask for. */
export interface Limit {
  readonly limit: number;
  readonly pageSize: number;
}

/** limitOf parses --limit (a positive whole number) and the page size to ask for. */
export function limitOf(value: string | undefined): Limit {
  if (value === undefined) return { limit: Infinity, pageSize: 100 };
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive whole number, not "${value}"`);
  return { limit, pageSize: Math.min(limit, 100) };
}

/** firstItems reads at most `limit` items of a List* method, page after page, asking for pages of `pageSize`. */
export async function firstItems<Req extends PageableRequest, Res extends PagedResponse, Item>(
  { limit, pageSize }: Limit,
  list: (request: Req) => Promise<Res>,
  request: Req,
  select: (response: Res) => readonly Item[],
): Promise<Item[]> {
  const out: Item[] = [];
  for await (const item of items(list, { ...request, pageSize }, select)) {
    out.push(item);
    if (out.length >= limit) break;
  }
  return out;
}

/** wholeNumber parses a whole-number option (seconds, versions, sequence numbers). */
export function wholeNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number, not "${value}"`);
  return n;
}

/** dateOption parses an ISO 8601 time option into a Date. */
export function dateOption(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(`${name} must be an ISO 8601 time such as 2026-12-01T09:00:00Z, not "${value}"`);
  return d;
}

// A profile's key or tokens go only to the server they were issued by: --url or PARLEY_URL naming
// another one would hand them (and a refresh token) to it.
function sameOrigin(url: string, profileUrl: string | undefined, profileName: string): string {
  if (profileUrl === undefined || new URL(url).origin === new URL(profileUrl).origin) return url;
  throw new UsageError(
    `profile "${profileName}" holds credentials for ${new URL(profileUrl).origin}, not ${new URL(url).origin}: ` +
      `sign in there with parley login --url ${url} --profile <name>, or set PARLEY_API_KEY`,
  );
}
