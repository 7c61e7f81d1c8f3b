/**
 * A `redis-server` of the tests' own on a free loopback port, and a Redis Cluster of three of them (no jest globals
 * here: the global setup uses both; no local imports either, as the global setup loads this file alone).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** Why the Redis Cluster suites could not run. */
export const REDIS_CLUSTER_MISSING_HINT =
  'A Redis Cluster could not be started: it needs redis-server (with cluster support) and redis-cli on PATH ' +
  '(Debian/Ubuntu: `sudo apt-get install redis-server redis-tools`), or PQC_TEST_REDIS_CLUSTER_URL set to the ' +
  'comma-separated URLs of a cluster of your own. CI fails without it.';


/** The URLs of the test cluster's nodes (`PQC_TEST_REDIS_CLUSTER_URL`, comma-separated, set by the global setup). */
export function testRedisClusterUrls(): string[] {
  const urls = process.env.PQC_TEST_REDIS_CLUSTER_URL;
  if (!urls) throw new Error(`PQC_TEST_REDIS_CLUSTER_URL is not set: run the tests through jest (its global setup starts a cluster). ${REDIS_CLUSTER_MISSING_HINT}`);
  return urls.split(',').map((u) => u.trim()).filter(Boolean);
}

/** A 3-master Redis Cluster on loopback, without persistence. */
export class RedisClusterProcess {
  readonly #nodes: RedisProcess[] = [];
  #dir: string | undefined;

  /** The nodes' URLs. */
  get urls(): string[] {
    return this.#nodes.map((n) => n.url);
  }

  /** The nodes' processes (to kill or freeze one). */
  get nodes(): readonly RedisProcess[] {
    return this.#nodes;
  }

  /** Starts `masters` cluster-enabled servers on free ports, creates the cluster and waits until it serves every slot. */
  async start(masters = 3): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'pqc-redis-cluster-'));
    this.#dir = dir;
    try {
      for (let i = 0; i < masters; i++) {
        const node = new RedisProcess();
        this.#nodes.push(node);
        await node.start([
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, `nodes-${i}.conf`),
          '--cluster-node-timeout', '2000',
          '--dir', dir,
        ]);
      }
      const addresses = this.#nodes.map((n) => `127.0.0.1:${n.port}`);
      const created = await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
      if (created.code !== 0) throw new Error(`redis-cli --cluster create failed (${created.code}): ${created.output.slice(-2000)}`);
      const deadline = Date.now() + 15_000;
      for (const node of this.#nodes) {
        while (!(await clusterOk(node.port))) {
          if (Date.now() > deadline) throw new Error(`the Redis Cluster on ${addresses.join(', ')} did not reach cluster_state:ok within 15 s`);
          await sleep(50);
        }
      }
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Kills every node and removes the temporary directory. */
  async kill(): Promise<void> {
    await Promise.all(this.#nodes.map((n) => n.kill()));
    this.#nodes.length = 0;
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
  }
}

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', (err) => resolve({ code: -1, output: `${err.message}. ${REDIS_MISSING_HINT}` }));
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function clusterOk(port: number): Promise<boolean> {
  const info = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'CLUSTER', 'INFO']);
  return info.code === 0 && info.output.includes('cluster_state:ok') && info.output.includes('cluster_slots_ok:16384');
}
