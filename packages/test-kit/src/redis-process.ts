/** A `redis-server` of the tests' own on a free loopback port (no jest globals here: the global setup uses it too). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type AddressInfo } from 'node:net';

/** Why the Redis suites did not run, and how to get them to. */
export const REDIS_MISSING_HINT =
  'redis-server is not on PATH, so the suites that need a real Redis did not run. Install it (Debian/Ubuntu: ' +
  '`sudo apt-get install redis-server`; macOS: `brew install redis`) and run the tests again, or point ' +
  'PQC_TEST_REDIS_URL at a Redis of your own. CI installs it and fails without it.';

/** A free TCP port on loopback, at the moment of asking. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True once something accepts connections on the port and answers PING with PONG. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** A `redis-server` process of a test's own, on loopback, without persistence. */
export class RedisProcess {
  #child: ChildProcess | undefined;
  #port: number;

  constructor(port = 0) {
    this.#port = port;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.#port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts redis-server (on a free port unless one was given) and waits until it answers PING. */
  async start(extraArgs: readonly string[] = []): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const port = this.#port || (await freePort());
      const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
        stdio: 'ignore',
      });
      let failure: Error | undefined;
      child.once('error', (err) => (failure = new Error(`cannot run redis-server (${err.message}). ${REDIS_MISSING_HINT}`)));
      child.once('exit', (code) => (failure ??= new Error(`redis-server exited with code ${code} on port ${port}`)));
      const deadline = Date.now() + 10_000;
      while (failure === undefined && !(await pings(port))) {
        if (Date.now() > deadline) failure = new Error(`redis-server on port ${port} did not answer within 10 s`);
        else await sleep(30);
      }
      if (failure === undefined) {
        this.#child = child;
        this.#port = port;
        return;
      }
      child.kill('SIGKILL');
      // Another process may have taken the port between the probe and the start: try another one.
      if (this.#port !== 0 || attempt >= 4 || failure.message.startsWith('cannot run')) throw failure;
    }
  }

  /** Kills the process (SIGKILL) and waits for it to exit: connections are refused from then on. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
    this.#child = undefined;
  }

  /** Freezes the process (SIGSTOP): connections stay open but nothing answers. */
  freeze(): void {
    this.#child?.kill('SIGSTOP');
  }

  /** Unfreezes it (SIGCONT). */
  thaw(): void {
    this.#child?.kill('SIGCONT');
  }
}
