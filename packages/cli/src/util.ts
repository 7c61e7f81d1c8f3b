/**
 * What every command shares: exit codes, the error type that carries one, argument parsing with clear messages,
 * and reading identity files.
 */
import { constants as fsConstants } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AgentIdentity, PeerIdentity, isDid, type Profile } from '@pqc-mcp/core';

/** The exit codes of every command (documented in README.md and `--help`). */
export const EXIT = {
  /** Success; for `verify`, the message is valid. */
  OK: 0,
  /** Verification failed, or the peer refused (PQC rejection, a tool error, an unauthorized client). */
  FAILED: 1,
  /** Usage error: a wrong or missing argument, an unreadable or invalid input file. */
  USAGE: 2,
  /** Runtime error: the server or upstream cannot be reached, the port cannot be bound, an unexpected failure. */
  RUNTIME: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports as `pqc-mcp: error: <message>` (no stack trace) and exits with `code`. */
export class CliError extends Error {
  readonly code: ExitCode;
  /** The command whose `--help` is suggested (usage errors). */
  readonly command: string | undefined;

  constructor(message: string, code: ExitCode, command?: string) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    this.command = command;
  }
}

/** A usage error (exit 2). */
export function usage(message: string, command?: string): CliError {
  return new CliError(message, EXIT.USAGE, command);
}

/** Where a command writes: stdout for results, stderr for diagnostics. Replaceable for tests and embedding. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export const processIo: Io = {
  out: (line) => {
    process.stdout.write(line + '\n');
  },
  err: (line) => {
    process.stderr.write(line + '\n');
  },
};

type Options = NonNullable<ParseArgsConfig['options']>;

/** `parseArgs` in strict mode, its errors turned into usage errors that name the command. */
export function parse<T extends Options>(command: string, args: string[], options: T, maxPositionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    const message = err instanceof Error ? err.message.split('. To specify a positional')[0]! : String(err);
    throw usage(message.replace(/\.$/, ''), command);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw usage(`unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}`, command);
  }
  return parsed;
}

/** The value of a required option, or a usage error naming it. */
export function required(value: string | undefined, flag: string, command: string): string {
  if (value === undefined || value === '') throw usage(`${flag} is required`, command);
  return value;
}

/** An http(s) URL argument. */
export function httpUrl(value: string, flag: string, command: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw usage(`${flag} must be an absolute http(s) URL, got ${JSON.stringify(value)}`, command);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usage(`${flag} must be an http(s) URL, got ${JSON.stringify(value)}`, command);
  }
  return url;
}

/** A `did:pqaid:` DID argument. */
export function didArg(value: string, flag: string, command: string): string {
  if (!isDid(value)) throw usage(`${flag} must be a DID of the form did:pqaid:<64 lowercase hex>, got ${JSON.stringify(value)}`, command);
  return value;
}

/** `--profiles v2,v1` (also `2,1`): the accepted profiles, in the given order. */
export function profilesArg(value: string | undefined, command: string): Profile[] {
  if (value === undefined) return [2];
  const profiles: Profile[] = [];
  for (const part of value.split(',').map((p) => p.trim().toLowerCase())) {
    const profile = part === 'v2' || part === '2' ? 2 : part === 'v1' || part === '1' ? 1 : undefined;
    if (profile === undefined) throw usage(`--profiles takes a list of v2 and v1 (e.g. v2,v1), got ${JSON.stringify(value)}`, command);
    if (!profiles.includes(profile)) profiles.push(profile);
  }
  return profiles;
}

/** A positive number of seconds. */
export function secondsArg(value: string | undefined, flag: string, command: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw usage(`${flag} must be a positive number of seconds, got ${JSON.stringify(value)}`, command);
  return n;
}

/** A short reason for a file system error (`no such file`, `permission denied`, ...). */
export function fsReason(err: unknown): string {
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'EEXIST':
      return 'file exists';
    case 'ENOTDIR':
      return 'a parent is not a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** Reads a text file named on the command line; an unreadable file is a usage error. */
export async function readTextFile(path: string, what: string, command: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw usage(`cannot read ${what} ${path}: ${fsReason(err)}`, command);
  }
}

/** Loads a private identity file (docs/PROTOCOL.md §1) with a clear error for every way it can be wrong. */
export async function loadIdentity(path: string, command: string, io?: Io): Promise<AgentIdentity> {
  const text = await readTextFile(path, 'identity file', command);
  let identity: AgentIdentity;
  try {
    identity = AgentIdentity.fromJwk(text);
  } catch (err) {
    throw usage(`invalid identity file ${path}: ${err instanceof Error ? err.message.replace(/^identity: /, '') : String(err)}`, command);
  }
  if (io) await warnIfExposed(path, io);
  return identity;
}

/** Loads an identity file, private or public (`identity FILE` shows either). */
export async function loadAnyIdentity(path: string, command: string): Promise<AgentIdentity | PeerIdentity> {
  const text = await readTextFile(path, 'identity file', command);
  try {
    const jwk = JSON.parse(text) as { priv?: unknown };
    return jwk && typeof jwk === 'object' && 'priv' in jwk ? AgentIdentity.fromJwk(text) : PeerIdentity.fromJwk(text);
  } catch (err) {
    throw usage(`invalid identity file ${path}: ${err instanceof Error ? err.message.replace(/^identity: /, '') : String(err)}`, command);
  }
}

/** Warns on stderr when a private identity file can be read by others than its owner. */
export async function warnIfExposed(path: string, io: Io): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const mode = (await stat(path)).mode & 0o777;
    if (mode & (fsConstants.S_IRWXG | fsConstants.S_IRWXO)) {
      io.err(`pqc-mcp: warning: ${path} holds a private seed and has mode ${mode.toString(8).padStart(4, '0')}; run: chmod 600 ${path}`);
    }
  } catch {
    // Already read once; a stat failure here is not worth an error.
  }
}

/** A one-line description of an error, for messages (the cause of `fetch failed` included). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (err.message === 'fetch failed' && cause instanceof Error) {
    const code = (cause as { code?: string }).code;
    return `${cause.message}${code && !cause.message.includes(code) ? ` (${code})` : ''}`;
  }
  return err.message;
}

/** True for errors of the network underneath (connection refused, DNS, reset, timeout). */
export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.message === 'fetch failed' || err.name === 'AbortError' || err.name === 'TimeoutError') return true;
  const code = (err as { code?: string }).code ?? ((err as { cause?: { code?: string } }).cause?.code);
  return typeof code === 'string' && /^(E[A-Z_]+|UND_ERR_[A-Z_]+)$/.test(code);
}
