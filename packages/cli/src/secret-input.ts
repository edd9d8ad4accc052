import { UsageError } from './exit-codes.js';

/** SecretInput is where a secret value comes from: stdin, which is a terminal or a pipe. */
export interface SecretInput {
  readonly stdin: NodeJS.ReadStream;
  readonly stderr: NodeJS.WriteStream;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** promptHidden asks on the terminal without echoing what is typed (raw mode, no readline echo). */
function promptHidden(io: SecretInput, question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const { stdin, stderr } = io;
    let value = '';
    stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      stderr.write('\n');
      if (err === undefined) resolve(value);
      else reject(err);
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * readSecretValue reads a secret from stdin: piped (`… | parley secrets put NAME`, one trailing
 * newline dropped) or typed at a no-echo prompt. Never from argv: a value on the command line
 * stays in shell history and is visible to every user in the process list.
 */
export async function readSecretValue(io: SecretInput, what: string): Promise<string> {
  const value = io.stdin.isTTY ? await promptHidden(io, `${what} (input hidden): `) : (await readAll(io.stdin)).replace(/\r?\n$/, '');
  if (value === '') throw new UsageError(`${what} is empty: pipe it on stdin or type it at the prompt`);
  return value;
}

/** readStdinLine reads a whole piped stdin (a key for `login --api-key-stdin`), trimmed. */
export async function readStdinText(io: SecretInput): Promise<string> {
  if (io.stdin.isTTY) return promptHidden(io, 'API key (input hidden): ');
  return (await readAll(io.stdin)).trim();
}
