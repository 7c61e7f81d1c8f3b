/**
 * The edge worker (examples/edge-worker.ts) bundled with esbuild and run under workerd through miniflare (npm),
 * driven from Node over real HTTP: the conformance suite (the MCP SDK clients through `pqcFetch` with SSE and JSON
 * responses, every rejection of docs/PROTOCOL.md §6, tampered and replayed requests among them, sessions ended by
 * DELETE, expiry), `PQCMCPClient` against it, and the PQC session state in the Durable Object: a session opened in one
 * workerd process is used by the next request in a new one, a replay across them is refused, a session ended in one
 * is refused in the next, and of concurrent copies of one request (or one handshake) exactly one is served. What the
 * store does method by method is tested against the real object in @pqc-mcp/durable-object (the store contract).
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Miniflare } from 'miniflare';
import { MessageSigner, PQCHandshake, type PQCSession } from '@pqc-mcp/core';
import { PQCMCPClient } from '@pqc-mcp/mcp';
import { CONFORMANCE_SERVER_IDENTITY, RawClient, runConformanceSuite, seededIdentity, type StartServer } from '@pqc-mcp/test-kit';
import { buildEdgeWorker, edgeWorkerOptions } from '../../../examples/shared/edge.js';
import { serverJwkText, serverVars, tempDir } from './helpers.js';

const SERVER = CONFORMANCE_SERVER_IDENTITY;
const CLIENT = seededIdentity(21);

/**
 * What workerd prints that is not for the test log: the broken pipe (with a native stack) of a client that goes away
 * mid-stream (the suite aborts a GET stream), the worker's backend line (checked by a test), and the SDK's note that
 * `responseMode: 'json'` drops notifications sent before a result (the JSON runs ask for that mode).
 */
const QUIET = /Broken pipe|^stack: |^\s*$|^PQC backend: |^responseMode: 'json' drops/;

let bundle: Promise<string> | undefined;
let bundleDir: { dir: string; remove(): Promise<void> } | undefined;

/** The worker bundle, built once for this file. */
function workerBundle(): Promise<string> {
  return (bundle ??= (async () => {
    bundleDir = await tempDir('pqc-edge-bundle-');
    const scriptPath = `${bundleDir.dir}/worker.js`;
    await buildEdgeWorker(scriptPath);
    return scriptPath;
  })());
}

afterAll(async () => {
  await bundleDir?.remove();
});

/** A workerd process running the worker. */
interface RunningWorker {
  mf: Miniflare;
  /** The MCP endpoint. */
  url: string;
  /** Every line workerd printed so far (the worker's console among them). */
  logs: string[];
  close(): Promise<void>;
}

/** Starts the worker with `vars` (the suite identity as `PQC_IDENTITY` unless given), its Durable Objects in `persistDir` or in memory. */
async function startWorker(vars: Record<string, string>, persistDir?: string): Promise<RunningWorker> {
  const logs: string[] = [];
  const mf = new Miniflare({
    ...edgeWorkerOptions({ scriptPath: await workerBundle(), vars: { PQC_IDENTITY: serverJwkText(), ...vars }, persistDir }),
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      for (const stream of [stdout, stderr]) {
        createInterface(stream).on('line', (line) => {
          logs.push(line);
          if (!QUIET.test(line)) console.error(line);
        });
      }
    },
  });
  const base = await mf.ready;
  return { mf, url: new URL('/mcp', base).href, logs, close: () => mf.dispose() };
}

const start: StartServer = async (options) => {
  const worker = await startWorker(await serverVars(options));
  return { url: worker.url, close: worker.close };
};

/** Resolves once `logs` holds a line matching `pattern` (rejects after `ms`). */
async function logged(logs: string[], pattern: RegExp, ms = 5000): Promise<string> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 20))) {
    const line = logs.find((l) => pattern.test(l));
    if (line !== undefined) return line;
  }
  throw new Error(`no line matching ${pattern} in workerd's output:\n${logs.join('\n')}`);
}

/** A raw client at `url` in a session opened elsewhere (another workerd process, another client object). */
function inSession(url: string, session: PQCSession): RawClient {
  const client = new RawClient(url, CLIENT, SERVER.did);
  client.session = session;
  return client;
}

/** Expects the signed 401 unknown_session of §6 for `signed`, answering it within `session`. */
async function expectEndedSession(response: Response, session: PQCSession, signed: { nonce: string; message: Record<string, unknown> }): Promise<void> {
  const text = await response.text();
  expect({ status: response.status, body: JSON.parse(text) as unknown }).toMatchObject({
    status: 401,
    body: { id: signed.message.id, error: { code: -32010, data: { pqc: 'unknown_session' } } },
  });
  expect(await MessageSigner.verifyMessage(text, { peer: session.peer })).toMatchObject({ valid: true, sessionId: session.sessionId, inReplyTo: signed.nonce });
}

describe('the edge worker under workerd', () => {
  test('GET pqc/handshake: the server identity; the worker signs with noble (workerd has no ML-DSA in WebCrypto)', async () => {
    const worker = await startWorker({});
    try {
      const info = await (await fetch(new URL('pqc/handshake', worker.url))).json();
      expect(info).toEqual({ did: SERVER.did, algorithm: SERVER.algorithm, public_key: SERVER.publicKeyHex, versions: [2] });
      // The backend is not on the wire (§5 lists what GET answers): the worker logs it once, as it makes its app.
      expect(await logged(worker.logs, /^PQC backend: /)).toBe('PQC backend: noble');
    } finally {
      await worker.close();
    }
  });

  test('without the PQC_IDENTITY secret it answers 500 and says so', async () => {
    const mf = new Miniflare({ ...edgeWorkerOptions({ scriptPath: await workerBundle(), vars: {} }), handleRuntimeStdio: () => {} });
    try {
      const response = await fetch(new URL('/pqc/handshake', await mf.ready));
      expect(response.status).toBe(500);
      expect(await response.text()).toContain('PQC_IDENTITY');
    } finally {
      await mf.dispose();
    }
  });

  test('PQCMCPClient: handshake, tools/list, a signed tools/call; close() ends the session, and a request in it is refused after', async () => {
    const worker = await startWorker({});
    try {
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: worker.url, serverDid: SERVER.did });
      const session = await client.connect();
      expect((await client.listTools()).map((t) => t.name).sort()).toEqual(['add', 'echo', 'whoami']);
      expect(await client.callTool('add', { a: 2, b: 40 })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
      expect(await client.callTool('echo', { text: 'héllo 😀' })).toMatchObject({ content: [{ type: 'text', text: 'héllo 😀' }] });
      expect(client.getAuditLog().filter((e) => e.operation === 'rejected')).toEqual([]);
      // close() sends DELETE pqc/handshake (best effort, errors swallowed): the session must be over in the object.
      await client.close();
      const raw = inSession(worker.url, session);
      const signed = await raw.sign({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
      await expectEndedSession(await raw.post(signed.text), session, signed);
    } finally {
      await worker.close();
    }
  });
});

// The worker serves the MCP SDK v2 handler only. A fresh isolate's first handshake and initialize (the app made, the
// object's tables created, noble compiled) can outlast a 1 s session on a loaded machine, its clock frozen while it
// computes: the expiry test gets 3 s.
runConformanceSuite('edge-worker.ts on workerd (miniflare)', start, { sdks: ['v2'], expiryTtlSec: 3 });

describe('PQC sessions in the Durable Object, over HTTP', () => {
  test('opened in one workerd process, used by the next request in a new one; a replay across them refused; ended in one, refused in the next', async () => {
    const storage = await tempDir('pqc-edge-do-');
    let worker = await startWorker({ PQC_JSON: '1' }, storage.dir);
    try {
      const first = new RawClient(worker.url, CLIENT, SERVER.did);
      const session = await first.handshake();
      await first.initialize();
      const call = await first.sign({ jsonrpc: '2.0', id: first.id(), method: 'tools/call', params: { name: 'echo', arguments: { text: 'one' } } });
      const answer = await first.post(call.text);
      expect(answer.status).toBe(200);
      expect(await first.verified(answer, call.nonce)).toMatchObject([{ result: { content: [{ text: 'one' }] } }]);

      // A new workerd process over the same storage: nothing of the first isolate's memory survives.
      await worker.close();
      worker = await startWorker({ PQC_JSON: '1' }, storage.dir);
      const second = inSession(worker.url, session);
      expect(await second.call('echo', { text: 'two' })).toMatchObject({ result: { content: [{ type: 'text', text: 'two' }] } });
      const replay = await second.post(call.text);
      expect({ status: replay.status, body: await replay.json() }).toMatchObject({ status: 401, body: { id: call.message.id, error: { data: { pqc: 'replay_detected' } } } });
      expect((await second.endSession()).status).toBe(204);

      // And one more: the session ended in the second process is refused in the third.
      await worker.close();
      worker = await startWorker({ PQC_JSON: '1' }, storage.dir);
      const third = inSession(worker.url, session);
      const late = await third.sign({ jsonrpc: '2.0', id: third.id(), method: 'tools/list' });
      await expectEndedSession(await third.post(late.text), session, late);
    } finally {
      await worker.close().catch(() => {});
      await storage.remove();
    }
  });

  test('of 25 concurrent copies of one request (or of one handshake) exactly one is served, the others are replays', async () => {
    const worker = await startWorker({ PQC_JSON: '1' });
    try {
      const client = new RawClient(worker.url, CLIENT, SERVER.did);
      await client.handshake();
      await client.initialize();
      const signed = await client.sign({ jsonrpc: '2.0', id: client.id(), method: 'tools/list' });
      const answers = await Promise.all(Array.from({ length: 25 }, async () => {
        const response = await client.post(signed.text);
        return { status: response.status, text: await response.text() };
      }));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      const refused = answers.filter((a) => a.status !== 200);
      expect(refused.map((a) => [a.status, (JSON.parse(a.text) as { error: { data: { pqc: string } } }).error.data.pqc])).toEqual(
        Array.from({ length: 24 }, () => [401, 'replay_detected']),
      );

      const { request } = await PQCHandshake.initiate(CLIENT, { serverDid: SERVER.did });
      const handshakes = await Promise.all(Array.from({ length: 25 }, async () => {
        const response = await fetch(client.handshakeUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
        return { status: response.status, text: await response.text() };
      }));
      expect(handshakes.filter((a) => a.status === 200)).toHaveLength(1);
      expect(handshakes.filter((a) => a.status !== 200).map((a) => [a.status, (JSON.parse(a.text) as { error: { data: { pqc: string } } }).error.data.pqc])).toEqual(
        Array.from({ length: 24 }, () => [401, 'replay_detected']),
      );
    } finally {
      await worker.close();
    }
  });
});
