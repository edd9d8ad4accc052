import { styleText } from 'node:util';
import { prettyFactory } from 'pino-pretty';

// `npm start` is read by a person: each service's JSON log line becomes one readable line with the
// service's name in its own colour (pino-pretty does the formatting). Services themselves always
// write JSON; only this view of the dev stack's output changes, and PARLEY_DEV_LOG_FORMAT=json
// keeps the raw lines.

type Colour = Parameters<typeof styleText>[0];

const PALETTE: readonly Colour[] = [
  'cyan',
  'magenta',
  'yellow',
  'green',
  'blue',
  'redBright',
  'cyanBright',
  'magentaBright',
  'greenBright',
];

/** LogLineFormatter turns one line of a service's output into what the terminal shows. */
export type LogLineFormatter = (service: string, line: string) => string;

/**
 * createPrettyLogFormatter formats JSON log lines with pino-pretty (time, level, message, then the
 * fields on the same line) behind the service's name in a colour of its own; lines that are not
 * JSON pass through. Colour is used only when `colour` is true (a terminal).
 */
export function createPrettyLogFormatter(colour: boolean): LogLineFormatter {
  const pretty = prettyFactory({
    colorize: colour,
    singleLine: true,
    translateTime: 'HH:MM:ss.l',
    ignore: 'pid,hostname,service,version',
    messageKey: 'msg',
  });
  const colours = new Map<string, Colour>();
  const width = 18; // the longest service name, voice-orchestrator
  return (service, line) => {
    let c = colours.get(service);
    if (c === undefined) {
      c = PALETTE[colours.size % PALETTE.length]!;
      colours.set(service, c);
    }
    const name = service.padEnd(width);
    const label = colour ? styleText(c, name, { validateStream: false }) : name;
    const body = line.trimStart().startsWith('{') ? pretty(line).trimEnd() : line;
    return `${label} ${body}`;
  };
}

/** WelcomeInfo is what the welcome needs to say. */
export interface WelcomeInfo {
  readonly edgeUrl: string;
  readonly signInUrl: string | undefined;
  readonly caCert: string;
  readonly stackFile: string;
}

/**
 * welcomeText is what `npm start` prints once everything is ready: where to sign in (the dev
 * identity provider's user), the API, and one command to paste that lists the demo agent.
 */
export function welcomeText(info: WelcomeInfo, relative: (path: string) => string): string {
  const ca = relative(info.caCert);
  const stackFile = relative(info.stackFile);
  const lines = [
    '',
    'Parley is running.',
    '',
    ...(info.signInUrl === undefined
      ? []
      : [
          `  Web console      ${info.edgeUrl}/console`,
          `  Console sign-in  ${info.signInUrl}`,
          '                   (dev identity provider, development only: pick "Dev owner <owner@parley.localhost>")',
        ]),
    `  API              ${info.edgeUrl}   (TLS by the dev CA: ${ca})`,
    `  Stack details    ${stackFile}   (bootstrap API key, demo agent id)`,
    '',
    '  List the demo agent:',
    `    curl --cacert ${ca} ${info.edgeUrl}/parley.api.v1.AgentService/ListAgents \\`,
    `      -H "Authorization: Bearer $(node -p "require('./${stackFile}').bootstrap.apiKey")" \\`,
    `      -H 'Content-Type: application/json' -d '{}'`,
    '  or with the parley CLI:',
    `    PARLEY_URL=${info.edgeUrl} PARLEY_CA=${ca} \\`,
    `      PARLEY_API_KEY=$(node -p "require('./${stackFile}').bootstrap.apiKey") node packages/cli/dist/main.js agents list`,
    '',
    '  Ctrl-C stops everything.',
    '',
  ];
  return lines.join('\n');
}
