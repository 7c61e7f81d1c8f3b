/** `pqc-mcp gateway`: the command around `startGateway`: arguments, logs, audit file, READY line, signals. */
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import type { AuditEntry, SessionStore } from '@pqc-mcp/core';
import { formatLogLine, startGateway, type RunningGateway } from '../gateway.js';
import { EXIT, CliError, didArg, fsReason, httpUrl, loadIdentity, parse, profilesArg, required, secondsArg, usage, type Io } from '../util.js';

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

async function redisStore(url: string, io: Io): Promise<RedisStoreLike> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usage(`--redis must be a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(url)}`, 'gateway');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw usage(`--redis must use the redis: or rediss: scheme, got ${JSON.stringify(url)}`, 'gateway');
  }
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

export async function gateway(args: string[], io: Io): Promise<number> {
  const { values } = parse(
    'gateway',
    args,
    {
      upstream: { type: 'string' },
      listen: { type: 'string' },
      identity: { type: 'string' },
      path: { type: 'string' },
      allow: { type: 'string', multiple: true },
      profiles: { type: 'string' },
      redis: { type: 'string' },
      audit: { type: 'string' },
      'json-log': { type: 'boolean' },
      'max-body': { type: 'string' },
      'session-ttl': { type: 'string' },
      'clock-skew': { type: 'string' },
    },
    0,
  );
  const upstream = httpUrl(required(values.upstream, '--upstream', 'gateway'), '--upstream', 'gateway');
  const { host, port } = parseListen(required(values.listen, '--listen', 'gateway'));
  const identityFile = required(values.identity, '--identity', 'gateway');
  if (values.path !== undefined && !values.path.startsWith('/')) throw usage(`--path must start with "/", got ${JSON.stringify(values.path)}`, 'gateway');
  const allow = (values.allow ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean).map((v) => didArg(v, '--allow', 'gateway'));
  const profiles = profilesArg(values.profiles, 'gateway');
  const maxBody = values['max-body'];
  if (maxBody !== undefined && !/^[1-9]\d{0,12}$/.test(maxBody)) throw usage(`--max-body must be a positive number of bytes, got ${JSON.stringify(maxBody)}`, 'gateway');
  const sessionTtlSec = values['session-ttl'] !== undefined ? secondsArg(values['session-ttl'], '--session-ttl', 'gateway', 3600) : undefined;
  const clockSkewSec = values['clock-skew'] !== undefined ? secondsArg(values['clock-skew'], '--clock-skew', 'gateway', 300) : undefined;
  const identity = await loadIdentity(identityFile, 'gateway', io);
  const audit = values.audit !== undefined ? openAuditFile(values.audit) : undefined;
  const store = values.redis !== undefined ? await redisStore(values.redis, io) : undefined;
  const jsonLog = values['json-log'] === true;

  let running: RunningGateway;
  try {
    running = await startGateway({
      upstream,
      identity,
      host,
      port,
      path: values.path,
      allow,
      profiles,
      store,
      sessionTtlSec,
      clockSkewSec,
      maxBodyBytes: maxBody !== undefined ? Number(maxBody) : undefined,
      auditSink: audit ? (entry: AuditEntry) => void audit.write(JSON.stringify(entry) + '\n') : undefined,
      onRequest: (log) => io.err(jsonLog ? JSON.stringify(log) : formatLogLine(log)),
    });
  } catch (err) {
    audit?.end();
    await store?.close?.().catch(() => {});
    const code = (err as { code?: string }).code;
    const why = code === 'EADDRINUSE' ? 'address in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'address not available' : err instanceof Error ? err.message : String(err);
    throw new CliError(`cannot listen on ${host}:${port}: ${why}`, EXIT.RUNTIME);
  }

  const startup = {
    event: 'listening',
    url: running.url,
    did: running.did,
    upstream: upstream.href,
    allow: allow.length > 0 ? allow : 'any',
    profiles: profiles.map((p) => `v${p}`).join(','),
    store: store ? 'redis' : 'memory',
  };
  io.err(
    jsonLog
      ? JSON.stringify(startup)
      : `pqc-mcp gateway: ${running.url} -> ${upstream.href} as ${running.did} (clients: ${allow.length > 0 ? allow.length + ' allowed' : 'any'}, profiles ${startup.profiles}, sessions in ${startup.store})`,
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
      io.err(jsonLog ? JSON.stringify({ event: 'stopping', signal }) : `pqc-mcp gateway: ${signal}, stopping`);
      running
        .close(5000)
        .catch(() => {})
        .then(
          () =>
            new Promise<void>((done) => {
              if (audit) audit.end(done);
              else done();
            }),
        )
        .then(() => {
          io.err(jsonLog ? JSON.stringify({ event: 'stopped' }) : 'pqc-mcp gateway: stopped');
          resolve(EXIT.OK);
        });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
