/** The `pqc-mcp` command line: dispatches to the commands; the process wrapper is index.ts. */
import { createRequire } from 'node:module';
import { audit } from './commands/audit.js';
import { bridge } from './commands/bridge.js';
import { call } from './commands/call.js';
import { gateway } from './commands/gateway.js';
import { identity, keygen } from './commands/keys.js';
import { rotate } from './commands/rotate.js';
import { verify } from './commands/verify.js';
import { HELP, TOP_HELP } from './help.js';
import { EXIT, CliError, processIo, type Io } from './util.js';

type Command = (args: string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, Command> = { keygen, identity, rotate, gateway, bridge, call, verify, audit };

function version(): string {
  try {
    return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the CLI with `argv` (without `node` and the script); resolves the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic !== undefined && HELP[topic] === undefined) throw new CliError(`unknown command ${JSON.stringify(topic)}`, EXIT.USAGE);
    // No command at all is a usage error: the help goes to stderr then.
    if (name === undefined) io.err(TOP_HELP);
    else io.out(topic !== undefined ? HELP[topic]! : TOP_HELP);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '-v' || name === '--version') {
    io.out(version());
    return EXIT.OK;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    throw new CliError(
      name.startsWith('-') ? `unknown option ${JSON.stringify(name)} (a command comes first)` : `unknown command ${JSON.stringify(name)}`,
      EXIT.USAGE,
    );
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(HELP[name]!);
    return EXIT.OK;
  }
  return command(rest, io);
}
