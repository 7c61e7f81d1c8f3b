/**
 * `pqc-mcp gateway`: the command around `startGateway`: arguments, the upstream (checked before READY), logs, audit
 * file, READY line, signals.
 */
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, type AuditEntry, type SessionStore } from '@pqc-mcp/core';
import { DEFAULT_TIMEOUTS, startGateway, type RunningGateway, type Upstream } from '../gateway/index.js';
import { createHttpUpstream } from '../gateway/http-upstream.js';
import { DEFAULT_STDIO_LIMITS, createStdioUpstream } from '../gateway/stdio-upstream.js';
import { formatJsonLogLine, formatLogLine } from '../log.js';
import { EXIT, CliError, didArg, fsReason, httpUrl, loadIdentity, parse, profilesArg, readTextFile, secondsArg, usage, type Io } from '../util.js';

/** `HOST:PORT`, `[v6]:PORT`, or `PORT` / `:PORT` (loopback: 127.0.0.1; all interfaces only when asked, 0.0.0.0:PORT). */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw usage(`--listen must be HOST:PORT (e.g. 127.0.0.1:8443, [::1]:8443, 0.0.0.0:8443), got ${JSON.stringify(value)}`, 'gateway');
  }
  const host = match[1] || match[2] || '127.0.0.1';
  return { host, port };
}

/** What the gateway needs of `@pqc-mcp/redis` (imported only when --redis is given). */
interface RedisStoreLike extends SessionStore {
  connect(): Promise<void>;
}

/** The `--redis` URL, checked (a usage error otherwise). */
function redisUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usage(`--redis must be a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(url)}`, 'gateway');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw usage(`--redis must use the redis: or rediss: scheme, got ${JSON.stringify(url)}`, 'gateway');
  }
  return parsed;
}

async function redisStore(url: string, io: Io): Promise<RedisStoreLike> {
  const parsed = redisUrl(url);
  const specifier = '@pqc-mcp/redis';
  let mod: { RedisSessionStore: new (options: { url: string; onError?: (err: unknown) => void }) => RedisStoreLike };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (err) {
    throw new CliError(`--redis needs the @pqc-mcp/redis package (npm i @pqc-mcp/redis): ${err instanceof Error ? err.message : String(err)}`, EXIT.RUNTIME);
  }
  let lastReported = 0;
  const store = new mod.RedisSessionStore({
    url,
    onError: (err) => {
      // Reconnection errors repeat every second while Redis is down: report at most one every 10 s.
      const now = Date.now();
      if (now - lastReported < 10_000) return;
      lastReported = now;
      io.err(`pqc-mcp gateway: redis: ${err instanceof Error ? err.message : String(err)}`);
    },
  });
  try {
    await store.connect();
  } catch (err) {
    await store.close?.().catch(() => {});
    throw new CliError(`cannot reach Redis at ${parsed.host}: ${err instanceof Error ? err.message : String(err)}`, EXIT.RUNTIME);
  }
  return store;
}

function openAuditFile(path: string): WriteStream {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (err) {
    throw usage(`cannot open audit file ${path}: ${fsReason(err)}`, 'gateway');
  }
  try {
    return createWriteStream(path, { fd, flags: 'a' });
  } catch (err) {
    closeSync(fd);
    throw usage(`cannot open audit file ${path}: ${fsReason(err)}`, 'gateway');
  }
}

/**
 * A command line as an argument vector, without a shell: words split on whitespace, `'...'` taken literally,
 * `"..."` with `\"` and `\\` escapes, a backslash outside quotes escaping the next character.
 */
export function splitCommand(value: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && (value[i + 1] === '"' || value[i + 1] === '\\')) word += value[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < value.length) {
      word = (word ?? '') + value[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw usage(`--upstream-command has an unterminated ${quote} quote`, 'gateway');
  if (word !== undefined) words.push(word);
  return words;
}

/** A positive whole number argument. */
function countArg(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[1-9]\d{0,6}$/.test(value)) throw usage(`${flag} must be a positive whole number, got ${JSON.stringify(value)}`, 'gateway');
  return Number(value);
}

const FLAGS = {
  upstream: { type: 'string' },
  'upstream-command': { type: 'string' },
  'upstream-env': { type: 'string', multiple: true },
  'max-children': { type: 'string' },
  'max-children-per-client': { type: 'string' },
  'child-idle': { type: 'string' },
  listen: { type: 'string' },
  identity: { type: 'string' },
  path: { type: 'string' },
  allow: { type: 'string', multiple: true },
  rotations: { type: 'string' },
  profiles: { type: 'string' },
  redis: { type: 'string' },
  audit: { type: 'string' },
  'json-log': { type: 'boolean' },
  'max-body': { type: 'string' },
  'max-batch': { type: 'string' },
  'session-ttl': { type: 'string' },
  'clock-skew': { type: 'string' },
  'request-timeout': { type: 'string' },
  'keep-alive-timeout': { type: 'string' },
} as const;

type Values = ReturnType<typeof parse<typeof FLAGS>>['values'];

/** The upstream the flags name: an HTTP URL, or a command the gateway runs itself. */
function upstreamOf(values: Values, maxBodyBytes: number, log: (line: string) => void): Upstream {
  const url = values.upstream;
  const commandLine = values['upstream-command'];
  if ((url === undefined) === (commandLine === undefined)) throw usage('give one of --upstream URL or --upstream-command "COMMAND ARGS"', 'gateway');
  const stdioOnly = ['upstream-env', 'max-children', 'max-children-per-client', 'child-idle'] as const;
  if (url !== undefined) {
    const stray = stdioOnly.find((flag) => values[flag] !== undefined);
    if (stray) throw usage(`--${stray} applies to --upstream-command only`, 'gateway');
    return createHttpUpstream({ url: httpUrl(url, '--upstream', 'gateway'), maxAnswerBytes: maxBodyBytes });
  }
  const [command, ...args] = splitCommand(commandLine!);
  if (command === undefined) throw usage('--upstream-command must name a command', 'gateway');
  const env: Record<string, string> = {};
  for (const name of (values['upstream-env'] ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw usage(`--upstream-env takes variable names, got ${JSON.stringify(name)}`, 'gateway');
    const value = process.env[name];
    if (value === undefined) throw usage(`--upstream-env ${name}: the variable is not set`, 'gateway');
    env[name] = value;
  }
  const d = DEFAULT_STDIO_LIMITS;
  return createStdioUpstream({
    command,
    args,
    env,
    maxLineBytes: maxBodyBytes,
    limits: {
      maxChildren: countArg(values['max-children'], '--max-children', d.maxChildren),
      maxChildrenPerClient: countArg(values['max-children-per-client'], '--max-children-per-client', d.maxChildrenPerClient),
      idleMs: secondsArg(values['child-idle'], '--child-idle', 'gateway', d.idleMs / 1000) * 1000,
    },
    log,
  });
}

function listenError(err: unknown, host: string, port: number): CliError {
  const code = (err as { code?: string }).code;
  const why =
    code === 'EADDRINUSE'
      ? 'address in use'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'EADDRNOTAVAIL'
          ? 'address not available'
          : err instanceof Error
            ? err.message
            : String(err);
  return new CliError(`cannot listen on ${host}:${port}: ${why}`, EXIT.RUNTIME);
}

export async function gateway(args: string[], io: Io): Promise<number> {
  const { values } = parse('gateway', args, FLAGS, 0);
  const jsonLog = values['json-log'] === true;
  /** One event line on stderr (process events of the upstream, start and stop). */
  const event = (name: string, text: string, fields: Record<string, unknown> = {}) =>
    io.err(jsonLog ? JSON.stringify({ event: name, message: text, ...fields }) : `pqc-mcp gateway: ${text}`);
  const maxBody = values['max-body'];
  if (maxBody !== undefined && !/^[1-9]\d{0,12}$/.test(maxBody)) throw usage(`--max-body must be a positive number of bytes, got ${JSON.stringify(maxBody)}`, 'gateway');
  const maxBodyBytes = maxBody !== undefined ? Number(maxBody) : DEFAULT_MAX_BODY_BYTES;
  const upstream = upstreamOf(values, maxBodyBytes, (line) => event('upstream', line));
  if (values.listen === undefined || values.listen === '') throw usage('--listen is required', 'gateway');
  const { host, port } = parseListen(values.listen);
  if (values.identity === undefined || values.identity === '') throw usage('--identity is required', 'gateway');
  if (values.path !== undefined && !values.path.startsWith('/')) throw usage(`--path must start with "/", got ${JSON.stringify(values.path)}`, 'gateway');
  const allow = (values.allow ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean).map((v) => didArg(v, '--allow', 'gateway'));
  const profiles = profilesArg(values.profiles, 'gateway');
  const sessionTtlSec = values['session-ttl'] !== undefined ? secondsArg(values['session-ttl'], '--session-ttl', 'gateway', 0) : undefined;
  const clockSkewSec = values['clock-skew'] !== undefined ? secondsArg(values['clock-skew'], '--clock-skew', 'gateway', 0) : undefined;
  const requestMs = secondsArg(values['request-timeout'], '--request-timeout', 'gateway', DEFAULT_TIMEOUTS.requestMs / 1000) * 1000;
  const keepAliveMs = secondsArg(values['keep-alive-timeout'], '--keep-alive-timeout', 'gateway', DEFAULT_TIMEOUTS.keepAliveMs / 1000) * 1000;
  const identity = await loadIdentity(values.identity, 'gateway', io);
  const rotations = values.rotations !== undefined ? await readTextFile(values.rotations, 'rotation chain', 'gateway') : undefined;
  // The default path: the upstream URL's own (a stdio upstream has none: core's default).
  const path = values.path ?? (values.upstream !== undefined ? new URL(values.upstream).pathname : undefined);
  if (values.redis !== undefined) redisUrl(values.redis);
  // Every usage error is reported before anything is started or reached.
  const audit = values.audit !== undefined ? openAuditFile(values.audit) : undefined;
  const abandon = async () => {
    audit?.end();
    await upstream.close();
  };

  try {
    await upstream.check();
  } catch (err) {
    await abandon();
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.RUNTIME);
  }
  let store: RedisStoreLike | undefined;
  if (values.redis !== undefined) {
    try {
      store = await redisStore(values.redis, io);
    } catch (err) {
      await abandon();
      throw err;
    }
  }

  let running: RunningGateway;
  try {
    running = await startGateway({
      upstream,
      identity,
      host,
      port,
      path,
      authorize: allow,
      rotations,
      profiles,
      store,
      sessionTtlSec,
      clockSkewSec,
      maxBodyBytes,
      maxBatch: values['max-batch'] !== undefined ? countArg(values['max-batch'], '--max-batch', DEFAULT_MAX_BATCH) : undefined,
      timeouts: { requestMs, headersMs: Math.min(DEFAULT_TIMEOUTS.headersMs, requestMs), keepAliveMs },
      audit: audit ? (entry: AuditEntry) => void audit.write(JSON.stringify(entry) + '\n') : undefined,
      onRequest: (log) => io.err(jsonLog ? formatJsonLogLine(log) : formatLogLine(log)),
    });
  } catch (err) {
    audit?.end();
    await store?.close?.().catch(() => {});
    await upstream.close();
    if (err instanceof TypeError) throw new CliError(err.message, EXIT.USAGE, 'gateway');
    throw listenError(err, host, port);
  }

  const startup = {
    url: running.url,
    did: running.did,
    upstream: upstream.description,
    allow: allow.length > 0 ? allow : 'any',
    profiles: profiles.map((p) => `v${p}`).join(','),
    store: store ? 'redis' : 'memory',
  };
  event(
    'listening',
    `${running.url} -> ${upstream.description} as ${running.did} (clients: ${allow.length > 0 ? allow.length + ' allowed' : 'any'}, profiles ${startup.profiles}, sessions in ${startup.store})`,
    startup,
  );
  io.out(`READY ${running.url} ${running.did}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.err(`pqc-mcp gateway: ${signal} again, exiting now`);
        process.exit(EXIT.RUNTIME);
      }
      stopping = true;
      event('stopping', `${signal}, stopping`, { signal });
      running
        .close(5000)
        .catch(() => {})
        .then(() => new Promise<void>((done) => (audit ? audit.end(done) : done())))
        .then(() => {
          event('stopped', 'stopped');
          resolve(EXIT.OK);
        });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
