/**
 * `pqc-mcp bridge` (the real binary) driven over stdio by the plain MCP SDK client (`StdioClientTransport`), reaching
 * a PQC server (the core on node:http, in this process) through it.
 */
import type { Readable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { AuditLog } from '@pqc-mcp/core';
import {
  BIN,
  closedPort,
  createTestMcpApp,
  seededIdentity,
  startGatewayProcess,
  startPlainUpstream,
  startPqcServer,
  createV1PeerApp,
  tempDir,
  writeIdentity,
} from './helpers.js';

const SERVER = seededIdentity(71, 'ML-DSA-65', 'remote-server');
const CLIENT = seededIdentity(72, 'ML-DSA-65', 'desktop-host');
const OTHER = seededIdentity(73, 'ML-DSA-65', 'other');

const tmp = tempDir();
let clientFile: string;
beforeAll(async () => {
  clientFile = await writeIdentity(CLIENT, tmp.path('client.json'));
});
afterAll(() => tmp.cleanup());

function textOf(result: object): string | undefined {
  return ((result as { content?: unknown }).content as { type: string; text?: string }[] | undefined)?.find((c) => c.type === 'text')?.text;
}

/** The host side: the plain SDK client spawning `node dist/index.js bridge ...` over stdio. */
function hostClient(args: string[]): { client: Client; transport: StdioClientTransport; stderr: () => string } {
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'bridge', ...args], stderr: 'pipe' });
  let stderr = '';
  (transport.stderr as Readable | null)?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const client = new Client({ name: 'desktop-host', version: '1.0.0' });
  return { client, transport, stderr: () => stderr };
}

async function waitFor(predicate: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !predicate() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
}

describe.each([
  ['SSE', false],
  ['JSON', true],
])('bridge to a PQC server (%s responses)', (_mode, json) => {
  let server: Awaited<ReturnType<typeof startPqcServer>>;
  const audit = new AuditLog();
  beforeAll(async () => {
    server = await startPqcServer(createTestMcpApp({ json, slowTool: true }), { identity: SERVER, audit, authorize: [CLIENT.did] });
  });
  afterAll(() => server.close());

  test('the plain SDK client over stdio: tools, calls and notifications all pass, every message signed', async () => {
    const { client, transport, stderr } = hostClient(['--server', server.url, '--identity', clientFile, '--server-did', SERVER.did]);
    await client.connect(transport);
    expect(client.getServerVersion()?.name).toBe('pqc-mcp-example');
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'slow', 'whoami']);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'via stdio ✓' } }))).toBe('via stdio ✓');
    expect(textOf(await client.callTool({ name: 'add', arguments: { a: 40, b: 2 } }))).toBe('42');
    const progress: number[] = [];
    const slow = await client.callTool({ name: 'slow', arguments: { steps: 2 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
    expect(textOf(slow)).toBe('done after 2 steps');
    if (!json) expect(progress).toEqual([1, 2]); // notifications on the POST's SSE stream reach the host
    const pid = transport.pid!;
    await client.close();

    // The server verified everything the bridge sent (as the authorized client) and signed everything back.
    const entries = audit.entries();
    expect(entries.filter((e) => !e.verified)).toEqual([]);
    expect(entries.find((e) => e.operation === 'handshake')).toMatchObject({ peer_did: CLIENT.did });
    expect(entries.filter((e) => e.operation === 'request').map((e) => e.method)).toEqual(
      expect.arrayContaining(['initialize', 'tools/list', 'tools/call']),
    );
    expect(JSON.stringify(server.seen)).not.toContain('_pqc');

    // Closing stdin ends the bridge: it ends the remote session and exits.
    await waitFor(() => !isAlive(pid));
    expect(isAlive(pid)).toBe(false);
    expect(stderr()).toContain(`pqc-mcp bridge: connected to ${server.url} as ${CLIENT.did}; server ${SERVER.did}`);
    expect(stderr()).toContain('stdin closed, closing');
    // It ended its PQC session too (a signed DELETE of the handshake path).
    const bodyless = audit.entries().map((e) => (e.verified && e.operation === 'request' ? (e.details as { http_method?: string; path?: string } | null) : null));
    expect(bodyless.some((d) => d?.http_method === 'DELETE' && d.path?.endsWith('/pqc/handshake') === true)).toBe(true);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bridge pinning', () => {
  let server: Awaited<ReturnType<typeof startPqcServer>>;
  beforeAll(async () => {
    server = await startPqcServer(createTestMcpApp({ json: true }), { identity: SERVER });
  });
  afterAll(() => server.close());

  test('a server that is not --server-did is refused: the host gets an error, nothing reaches the server', async () => {
    const { client, transport, stderr } = hostClient(['--server', server.url, '--identity', clientFile, '--server-did', OTHER.did]);
    await expect(client.connect(transport)).rejects.toThrow(/pqc-mcp bridge: the remote server failed \(peer_mismatch\)/);
    await client.close();
    expect(stderr()).toMatch(/pqc-mcp bridge: initialize failed: .*peer_mismatch|pqc-mcp bridge: initialize failed/);
    expect(server.seen).toEqual([]);
  });

  test('a forged server message on an SSE stream: the host gets an error, not the message and not a hang', async () => {
    const mitm = await startPqcServer(createTestMcpApp({ json: false }), { identity: SERVER }, (text) => text.replace('tamper me', 'tampered!'));
    const { client, transport, stderr } = hostClient(['--server', mitm.url, '--identity', clientFile, '--server-did', SERVER.did]);
    try {
      await client.connect(transport);
      // pqcFetch refuses the forged answer and answers the request with a local -32010 error instead.
      await expect(client.callTool({ name: 'echo', arguments: { text: 'tamper me' } })).rejects.toMatchObject({
        code: -32010,
        data: { pqc: 'invalid_signature' },
      });
      // The session goes on: the next call is answered.
      expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'fine' } }))).toBe('fine');
      await client.close();
      expect(stderr()).toMatch(/request \d+ refused: PQC authentication failed: invalid_signature/);
    } finally {
      await client.close();
      await mitm.close();
    }
  });

  test('--trust-on-first-use pins whichever server answers, and says which', async () => {
    const { client, transport, stderr } = hostClient(['--server', server.url, '--identity', clientFile, '--trust-on-first-use']);
    await client.connect(transport);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'tofu' } }))).toBe('tofu');
    await client.close();
    expect(stderr()).toContain(`server ${SERVER.did} (trusted on first use)`);
  });

  test('an unreachable server: every request gets a JSON-RPC error naming the cause', async () => {
    const { client, transport, stderr } = hostClient(['--server', `http://127.0.0.1:${await closedPort()}/mcp`, '--identity', clientFile, '--trust-on-first-use']);
    await expect(client.connect(transport)).rejects.toThrow(/pqc-mcp bridge: the remote server failed: .*(ECONNREFUSED|connect)/);
    await client.close();
    expect(stderr()).toMatch(/initialize failed: .*(ECONNREFUSED|connect)/);
    expect(stderr()).not.toMatch(/\n\s+at /);
  });
});

describe('bridge + gateway: a stdio host reaches an unmodified MCP server, PQC on the wire between them', () => {
  test('the plain SDK client on one end, the plain SDK server on the other', async () => {
    const upstream = await startPlainUpstream(createTestMcpApp({ json: false, slowTool: true }));
    const gatewayFile = await writeIdentity(SERVER, tmp.path('gateway.json'));
    const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--allow', CLIENT.did]);
    try {
      const { client, transport } = hostClient(['--server', gateway.url, '--identity', clientFile, '--server-did', gateway.did]);
      await client.connect(transport);
      const progress: number[] = [];
      const slow = await client.callTool({ name: 'slow', arguments: { steps: 2 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
      expect(textOf(slow)).toBe('done after 2 steps');
      expect(progress).toEqual([1, 2]);
      expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'end to end' } }))).toBe('end to end');
      await client.close();
      expect(JSON.stringify(upstream.seen)).not.toContain('_pqc');
      // Every request after the gateway's start-up check came from the verified client.
      expect(upstream.requests.slice(1).every((r) => r.headers['pqc-peer-did'] === CLIENT.did)).toBe(true);
    } finally {
      await gateway.stop('SIGKILL');
      await upstream.close();
    }
  });
});

describe('bridge --profile v1: a pqc-mcp-transport peer (tools/list and tools/call as plain JSON-RPC, no initialize)', () => {
  test('the host lists and calls the peer\'s tools; a v1 result {"content": value} becomes a text block', async () => {
    const peer = await startPqcServer(createV1PeerApp(), { identity: SERVER, profiles: [2, 1] });
    const { client, transport, stderr } = hostClient(['--server', peer.url, '--identity', clientFile, '--server-did', SERVER.did, '--profile', 'v1']);
    try {
      await client.connect(transport);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['shout']);
      expect(textOf(await client.callTool({ name: 'shout', arguments: { text: 'v1 peer' } }))).toBe('V1 PEER');
      expect(peer.seen.map((m) => (m as { method: string }).method)).toEqual(['tools/list', 'tools/call']);
      expect(stderr()).toContain('serving the v1 peer');
    } finally {
      await client.close();
      await peer.close();
    }
  });
});
