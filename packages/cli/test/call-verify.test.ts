/** `pqc-mcp call` against a PQC server in this process, and `pqc-mcp verify` on captured messages. */
import { writeFileSync } from 'node:fs';
import { MessageSigner, pqcFetch } from '@pqc-mcp/core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  closedPort,
  createTestMcpApp,
  createV1PeerApp,
  expectCleanError,
  runCli,
  seededIdentity,
  startPlainUpstream,
  startPqcServer,
  tempDir,
  writeIdentity,
} from './helpers.js';

const SERVER = seededIdentity(81, 'ML-DSA-65', 'server');
const CLIENT = seededIdentity(82, 'ML-DSA-65', 'client');
const OTHER = seededIdentity(83, 'ML-DSA-65', 'other');

const tmp = tempDir();
let clientFile: string;
beforeAll(async () => {
  clientFile = await writeIdentity(CLIENT, tmp.path('client.json'));
});
afterAll(() => tmp.cleanup());

describe('call', () => {
  let server: Awaited<ReturnType<typeof startPqcServer>>;
  beforeAll(async () => {
    server = await startPqcServer(createTestMcpApp({ json: false }), { identity: SERVER });
  });
  afterAll(() => server.close());

  test('one verified tool call prints the result text', async () => {
    const result = await runCli(['call', server.url, 'echo', '{"text":"héllo ✓"}', '--identity', clientFile, '--server-did', SERVER.did]);
    expect(result).toMatchObject({ code: 0, stdout: 'héllo ✓\n' });
    const sum = await runCli(['call', server.url, 'add', '{"a":2,"b":40}', '--identity', clientFile, '--server-did', SERVER.did]);
    expect(sum).toMatchObject({ code: 0, stdout: '42\n' });
    expect(JSON.stringify(server.seen)).not.toContain('_pqc');
  });

  test('--json prints the whole result; --trust-on-first-use says which server it pinned', async () => {
    const result = await runCli(['call', server.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--trust-on-first-use', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ content: [{ type: 'text', text: 'x' }] });
    expect(result.stderr).toContain(`trusted 127.0.0.1:${new URL(server.url).port} on first use: server ${SERVER.did}`);
  });

  test('a server that is not --server-did is refused: exit 1', async () => {
    const result = await runCli(['call', server.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--server-did', OTHER.did]);
    expectCleanError(result, 1, /refused \(peer_mismatch\)/);
    expect(result.stdout).toBe('');
  });

  test('a tool error: exit 1, the error text printed', async () => {
    const result = await runCli(['call', server.url, 'nope', '--identity', clientFile, '--server-did', SERVER.did]);
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toMatch(/nope/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test('a server without PQC: exit 1 (the handshake is refused)', async () => {
    const plain = await startPlainUpstream(createTestMcpApp({ json: true }));
    try {
      const result = await runCli(['call', plain.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--trust-on-first-use']);
      expectCleanError(result, 1, /refused \(handshake_failed\)/);
      expect(plain.seen.some((m) => (m as { method?: string }).method === 'tools/call')).toBe(false);
    } finally {
      await plain.close();
    }
  });

  test('--handshake-url: the handshake goes there; --mcp-protocol auto falls back to initialize', async () => {
    const handshakeUrl = new URL('pqc/handshake', server.url).href;
    const result = await runCli(['call', server.url, 'echo', '{"text":"negotiated"}', '--identity', clientFile, '--server-did', SERVER.did, '--handshake-url', handshakeUrl, '--mcp-protocol', 'auto']);
    expect(result).toMatchObject({ code: 0, stdout: 'negotiated\n' });
    const wrong = await runCli(['call', server.url, 'echo', '--identity', clientFile, '--server-did', SERVER.did, '--handshake-url', new URL('/nowhere', server.url).href]);
    expect(wrong.code).toBe(1);
    const usage = await runCli(['call', server.url, 'echo', '--identity', clientFile, '--server-did', SERVER.did, '--mcp-protocol', 'newest']);
    expectCleanError(usage, 2, /--mcp-protocol must be legacy, auto or a protocol version/);
  });

  test('--profile v1: one plain tools/call to a pqc-mcp-transport peer, its result printed whatever its shape', async () => {
    const peer = await startPqcServer(createV1PeerApp(), { identity: SERVER, profiles: [2, 1] });
    try {
      const result = await runCli(['call', peer.url, 'shout', '{"text":"seed format"}', '--identity', clientFile, '--server-did', SERVER.did, '--profile', 'v1']);
      expect(result).toMatchObject({ code: 0, stdout: 'SEED FORMAT\n' });
      expect(peer.seen).toEqual([{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'shout', arguments: { text: 'seed format' } } }]);
      const json = await runCli(['call', peer.url, 'shout', '{"text":"x"}', '--identity', clientFile, '--server-did', SERVER.did, '--profile', 'v1', '--json']);
      expect(JSON.parse(json.stdout)).toEqual({ content: [{ type: 'text', text: 'X' }] });
      const missing = await runCli(['call', peer.url, 'nope', '--identity', clientFile, '--server-did', SERVER.did, '--profile', 'v1']);
      expectCleanError(missing, 1, /the server answered with an error: no such method|unknown|nope/);
      const both = await runCli(['call', peer.url, 'shout', '--identity', clientFile, '--server-did', SERVER.did, '--profile', 'v1', '--mcp-protocol', 'auto']);
      expectCleanError(both, 2, /--mcp-protocol does not apply to --profile v1/);
    } finally {
      await peer.close();
    }
  });

  test('nobody listening: exit 3', async () => {
    const result = await runCli(['call', `http://127.0.0.1:${await closedPort()}/mcp`, 'echo', '--identity', clientFile, '--trust-on-first-use']);
    expectCleanError(result, 3, /cannot reach http:\/\/127\.0\.0\.1:\d+\/mcp: .*ECONNREFUSED/);
  });
});

describe('verify', () => {
  const signer = new MessageSigner(SERVER);
  const sessionId = 'ab'.repeat(16);
  const message = { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'signed ✓' }] } };

  async function file(name: string, text: string): Promise<string> {
    const path = tmp.path(name);
    writeFileSync(path, text);
    return path;
  }

  test('a good message (public_key in the envelope) is valid: exit 0; tampered: exit 1 invalid_signature', async () => {
    const signed = await signer.signMessage(message, { sessionId, includePublicKey: true });
    const good = await runCli(['verify', await file('good.json', signed.text)]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain(`valid: signed by ${SERVER.did} (ML-DSA-65, profile v2)`);
    expect(good.stdout).toContain('integrity only');

    const tampered = await runCli(['verify', await file('tampered.json', signed.text.replace('signed ✓', 'signed ✗'))]);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(/^invalid: invalid_signature: /);

    const fromStdin = await runCli(['verify', '-', '--peer-did', SERVER.did], { input: signed.text });
    expect(fromStdin.code).toBe(0);
    const json = await runCli(['verify', '--json'], { input: signed.text });
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, messages: [{ valid: true, signerDid: SERVER.did, nonce: signed.nonce, sessionId }] });

    const wrongPeer = await runCli(['verify', '--peer-did', OTHER.did], { input: signed.text });
    expect(wrongPeer.code).toBe(1);
    expect(wrongPeer.stdout).toMatch(/^invalid: peer_mismatch: /);
    const wrongKey = await runCli(['verify', '--peer-key', OTHER.publicKeyHex], { input: signed.text });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toMatch(/^invalid: peer_mismatch: /);
  });

  test('a v2 message without public_key needs the signer key: --peer-key HEX or an identity file', async () => {
    const signed = await signer.signMessage(message, { sessionId });
    const path = await file('nokey.json', signed.text);
    const missing = await runCli(['verify', path]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/^invalid: invalid_envelope: .*--peer-key/);
    expect((await runCli(['verify', path, '--peer-key', SERVER.publicKeyHex])).code).toBe(0);
    const pub = await file('server.pub.json', JSON.stringify(SERVER.toJwk()));
    expect((await runCli(['verify', path, '--peer-key', pub, '--peer-did', SERVER.did])).code).toBe(0);
    expectCleanError(await runCli(['verify', path, '--peer-key', pub, '--peer-did', OTHER.did]), 2, /is not the DID of --peer-key/);
  });

  test('age only matters with --max-age; v1 only with --profiles v2,v1', async () => {
    const old = await signer.signMessage(message, { sessionId, includePublicKey: true, now: Date.now() - 3600_000 });
    expect((await runCli(['verify'], { input: old.text })).code).toBe(0);
    const stale = await runCli(['verify', '--max-age', '300'], { input: old.text });
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^invalid: stale_timestamp/);

    const v1 = await signer.signMessage(message, { profile: 1 });
    const refused = await runCli(['verify'], { input: v1.text });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^invalid: unsupported_version/);
    expect((await runCli(['verify', '--profiles', 'v2,v1'], { input: v1.text })).code).toBe(0);
  });

  test('malformed input: exit 1 malformed_json', async () => {
    const result = await runCli(['verify'], { input: '{"jsonrpc": "2.0",' });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^invalid: malformed_json/);
    expect((await runCli(['verify'], { input: '' })).code).toBe(1);
  });

  test('a captured SSE response from a real PQC server verifies event by event against the server key', async () => {
    const server = await startPqcServer(createTestMcpApp({ json: false }), { identity: SERVER });
    const captured: string[] = [];
    const fetch = pqcFetch({
      identity: CLIENT,
      serverDid: SERVER.did,
      fetch: async (input, init) => {
        const response = await globalThis.fetch(input, init);
        if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream') && init?.method === 'POST') {
          captured.push(await response.clone().text());
        }
        return response;
      },
    });
    const client = new Client({ name: 'capture', version: '1.0.0' });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { fetch }));
      await client.callTool({ name: 'echo', arguments: { text: 'captured' } });
      await client.close();
    } finally {
      await server.close();
    }
    const capture = captured.find((c) => c.includes('captured'))!;
    expect(capture).toMatch(/^event: message\n(id: .*\n)?data: \{/m);
    const path = await file('capture.sse', capture);
    const good = await runCli(['verify', path, '--peer-key', SERVER.publicKeyHex]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain(`valid: signed by ${SERVER.did}`);
    expect(good.stdout).toMatch(/in_reply_to: [0-9a-f]{32}/);

    const tampered = await file('capture-tampered.sse', capture.replace('captured', 'kaptured'));
    const bad = await runCli(['verify', tampered, '--peer-key', SERVER.publicKeyHex]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/invalid: invalid_signature/);
  });
});
