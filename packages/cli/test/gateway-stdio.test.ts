/**
 * `pqc-mcp gateway --upstream-command`: the MCP project's reference server, `@modelcontextprotocol/server-everything`
 * from npm, run as a stdio upstream and served over PQC-signed Streamable HTTP. Its tools, its progress notifications
 * and its sampling requests (a server-to-client request the client answers, signed and bound by `in_reply_to`) pass
 * through, with the official MCP SDK clients (v2 and 1.x) on `pqcFetch`, with `pqc-mcp call`, and with a stdio host
 * through `pqc-mcp bridge`. A command that cannot serve is reported at start.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { pqcFetch, type AuditEntry } from '@pqc-mcp/core';
import { BIN, EVERYTHING_COMMAND, expectCleanError, runCli, seededIdentity, startGatewayProcess, tempDir, writeIdentity, type GatewayProcess } from './helpers.js';

const GATEWAY = seededIdentity(111, 'ML-DSA-65', 'gateway');
const CLIENT = seededIdentity(112, 'ML-DSA-65', 'client');

jest.setTimeout(60_000);

const tmp = tempDir();
let gatewayFile: string;
let clientFile: string;
let auditFile: string;
let gateway: GatewayProcess;
beforeAll(async () => {
  gatewayFile = await writeIdentity(GATEWAY, tmp.path('gateway.json'));
  clientFile = await writeIdentity(CLIENT, tmp.path('client.json'));
  auditFile = tmp.path('audit.jsonl');
  gateway = await startGatewayProcess(['--upstream-command', EVERYTHING_COMMAND, '--listen', '127.0.0.1:0', '--identity', gatewayFile, '--audit', auditFile]);
});
afterAll(async () => {
  await gateway?.stop('SIGTERM');
  tmp.cleanup();
});

function textOf(result: unknown): string {
  return ((result as { content: { type: string; text?: string }[] }).content.find((c) => c.type === 'text')?.text ?? '') as string;
}

const SAMPLED = { model: 'test-model', role: 'assistant' as const, content: { type: 'text' as const, text: 'sampled by the client ✓' } };

test('the MCP SDK v2 client: tools, progress notifications, and a sampling request answered by the client', async () => {
  const fetch = pqcFetch({ identity: CLIENT, serverDid: GATEWAY.did });
  const client = new ClientV2({ name: 'v2-client', version: '1.0.0' }, { capabilities: { sampling: {} } });
  let sampled = 0;
  client.setRequestHandler('sampling/createMessage', async () => {
    sampled++;
    return SAMPLED;
  });
  const transport = new TransportV2(new URL(gateway.url), { fetch });
  await client.connect(transport);
  expect(client.getServerVersion()?.name).toBe('mcp-servers/everything');
  const names = (await client.listTools()).tools.map((t) => t.name);
  expect(names).toEqual(expect.arrayContaining(['echo', 'get-sum', 'trigger-long-running-operation', 'trigger-sampling-request']));
  expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'héllo ✓' } }))).toBe('Echo: héllo ✓');

  const progress: number[] = [];
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
    { onprogress: (p) => void progress.push(p.progress) },
  );
  expect(textOf(long)).toContain('Long running operation completed');
  expect(progress).toEqual([1, 2, 3, 4]);

  const sampling = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
  expect(sampled).toBe(1);
  expect(textOf(sampling)).toContain('sampled by the client ✓');

  await transport.terminateSession();
  await client.close();
  await fetch.endSession();
  expect(fetch.audit.entries().filter((e) => !e.verified)).toEqual([]);

  // The gateway signed the sampling request and verified the client's answer to it (bound by in_reply_to, §3).
  const audit = readFileSync(auditFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditEntry);
  const request = audit.find((e) => e.method === 'sampling/createMessage');
  expect(request).toMatchObject({ operation: 'request', signer_did: GATEWAY.did, verified: true });
  expect(audit.filter((e) => e.operation === 'response' && e.signer_did === CLIENT.did && e.verified && e.method === null).length).toBeGreaterThanOrEqual(1);
  expect(audit.filter((e) => e.operation === 'rejected')).toEqual([]);
});

test('the MCP SDK 1.x client: tools, progress and sampling too', async () => {
  const fetch = pqcFetch({ identity: CLIENT, serverDid: GATEWAY.did });
  const client = new ClientV1({ name: 'v1-sdk-client', version: '1.0.0' }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async () => SAMPLED);
  const transport = new TransportV1(new URL(gateway.url), { fetch });
  await client.connect(transport);
  expect(textOf(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }))).toBe('The sum of 2 and 40 is 42.');
  const progress: number[] = [];
  await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 2 } }, undefined, {
    onprogress: (p) => void progress.push(p.progress),
  });
  expect(progress).toEqual([1, 2]);
  expect(textOf(await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } }))).toContain('sampled by the client ✓');
  await transport.terminateSession();
  await client.close();
});

test('pqc-mcp call through it, with --mcp-protocol auto (server-everything is legacy: the probe falls back)', async () => {
  const result = await runCli(['call', gateway.url, 'echo', '{"message":"from the shell"}', '--identity', clientFile, '--server-did', gateway.did, '--mcp-protocol', 'auto'], {
    timeoutMs: 40_000,
  });
  expect(result).toMatchObject({ code: 0, stdout: 'Echo: from the shell\n' });
});

test('a stdio host through pqc-mcp bridge: host -> bridge -> gateway -> server-everything', async () => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'bridge', '--server', gateway.url, '--identity', clientFile, '--server-did', gateway.did],
    stderr: 'pipe',
  });
  let stderr = '';
  (transport.stderr as Readable | null)?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const host = new ClientV1({ name: 'desktop-host', version: '1.0.0' });
  await host.connect(transport);
  const { tools } = await host.listTools();
  expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'get-sum']));
  expect(textOf(await host.callTool({ name: 'echo', arguments: { message: 'via the bridge' } }))).toBe('Echo: via the bridge');
  expect(textOf(await host.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }))).toBe('The sum of 1 and 2 is 3.');
  await host.close();
  expect(stderr).toContain(`connected to ${gateway.url} as ${CLIENT.did}; server ${GATEWAY.did}`);
});

test('the MCP server process of each session is its own, and ends with the session', async () => {
  await new Promise((r) => setTimeout(r, 300));
  const stderr = gateway.stderr();
  const started = stderr.match(/mcp server pid (\d+): started for/g) ?? [];
  expect(new Set(started).size).toBe(started.length);
  expect(stderr).toMatch(/the client ended the MCP session; the MCP session is over/);
});

test('a command that cannot serve MCP: a clear error at start, exit 3, no READY', async () => {
  const missing = await runCli(['gateway', '--upstream-command', '/nonexistent/mcp-server --flag', '--listen', '127.0.0.1:0', '--identity', gatewayFile]);
  expectCleanError(missing, 3, /the MCP server command \/nonexistent\/mcp-server --flag does not answer initialize \(.*ENOENT/);
  expect(missing.stdout).not.toContain('READY');
  const failing = await runCli([
    'gateway', '--upstream-command', `${JSON.stringify(process.execPath)} -e "console.error('no config'); process.exit(2)"`, '--listen', '127.0.0.1:0', '--identity', gatewayFile,
  ]);
  expectCleanError(failing, 3, /does not answer initialize .*its last stderr line: no config/);
  expect(failing.stdout).not.toContain('READY');
});
