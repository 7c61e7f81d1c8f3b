/**
 * Receipts a third party can verify (docs/AUDIT.md): a real session (the MCP SDK v2 client through pqcFetch, an MCP
 * SDK v2 server behind the core on node:http) written by `openAuditFile`, then checked offline by
 * `pqc-mcp audit verify` and by `verifyAuditFile`: the untouched file verifies; one changed byte anywhere is named
 * with its line; a cut tail is reported as such; a kept request and answer prove who asked and what was answered.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import * as z from 'zod/v4';
import { AUDIT_CHECKPOINT_CONTEXT, AuditChain, MessageSigner, canonicalJson, pqcFetch, verifyAuditFile, type AuditEntryLine } from '@pqc-mcp/core';
import { openAuditFile } from '@pqc-mcp/core/node';
import { connectSdkClient } from '@pqc-mcp/test-kit';
import { runCli, seededIdentity, startPqcServer, tempDir } from './helpers.js';

const SERVER = seededIdentity(91, 'ML-DSA-65', 'server');
const CLIENT = seededIdentity(92, 'ML-DSA-65', 'client');
const OTHER = seededIdentity(93, 'ML-DSA-65', 'other');

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function toolApp(): (request: Request, body: unknown) => Promise<Response> {
  const handler = createMcpHandler(() => {
    const server = new McpServer({ name: 'audit-test', version: '1.0.0' });
    server.registerTool('echo', { inputSchema: z.object({ text: z.string() }) }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
    return server;
  });
  return (request, body) => handler.fetch(request, { parsedBody: body });
}

/** One real session written to `path`: list the tools, call echo twice, end the MCP session, close the file. */
async function recordSession(path: string, options: { checkpointEvery?: number; keepMessages?: boolean } = {}): Promise<void> {
  const file = await openAuditFile(path, { identity: SERVER, keepMessages: options.keepMessages ?? true, checkpointEvery: options.checkpointEvery ?? 4 });
  const server = await startPqcServer(toolApp(), { identity: SERVER, audit: file.log });
  try {
    const client = await connectSdkClient('v2 client, auto', server.url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did }));
    expect(await client.listTools()).toEqual(['echo']);
    expect(await client.callTool('echo', { text: 'receipt ✓' })).toMatchObject({ content: [{ type: 'text', text: 'receipt ✓' }] });
    expect(await client.callTool('echo', { text: 'second' })).toMatchObject({ content: [{ type: 'text', text: 'second' }] });
    await client.close();
  } finally {
    await server.close();
    await file.close();
  }
}

function lineStarts(bytes: Uint8Array): number[] {
  const starts = [0];
  bytes.forEach((b, i) => {
    if (b === 0x0a && i + 1 < bytes.length) starts.push(i + 1);
  });
  return starts;
}

/** The 1-based line holding byte `offset` (a newline belongs to the line it ends). */
function lineOf(starts: number[], offset: number): number {
  let line = 0;
  while (line + 1 < starts.length && starts[line + 1]! <= offset) line++;
  return line + 1;
}

describe('an audit file from a real session', () => {
  const path = tmp.path('session.jsonl');
  let bytes: Buffer;
  beforeAll(async () => {
    await recordSession(path);
    bytes = readFileSync(path);
  }, 30_000);

  test('is mode 0600 JSON Lines: a start line, entries, checkpoints, a final checkpoint', () => {
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const lines = bytes.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; final?: boolean });
    expect(lines[0]).toMatchObject({ type: 'start', prev: null, signer_did: SERVER.did, keep_messages: true });
    expect(lines.filter((l) => l.type === 'checkpoint').length).toBeGreaterThanOrEqual(3);
    expect(lines.at(-1)).toMatchObject({ type: 'checkpoint', final: true });
  });

  test('verifies with the CLI against the server key: exit 0', async () => {
    const result = await runCli(['audit', 'verify', path, '--server-key', SERVER.publicKeyHex, '--require-closed']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^valid: \d+ line\(s\), \d+ entries, \d+ checkpoint\(s\), 1 segment\(s\)/);
    expect(result.stdout).toMatch(/messages: {4}\d+ verified, 0 unchecked/);
    expect(result.stdout).toContain('closed:      yes');
  });

  test('another server key is refused: line 1, wrong_signer', async () => {
    const result = await verifyAuditFile(bytes, { serverKeys: [OTHER] });
    expect(result).toMatchObject({ ok: false, failure: { line: 1, reason: 'wrong_signer' } });
    // Without a pinned key the file's own key is used: intact, but not proof of who wrote it.
    expect(await verifyAuditFile(bytes)).toMatchObject({ ok: true, signers: [SERVER.did] });
  });

  test('the kept request and answer prove who called the tool and what the server answered', async () => {
    const entries = bytes
      .toString('utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntryLine)
      .filter((l) => l.type === 'entry')
      .map((l) => l.entry);
    const call = entries.find((e) => e.operation === 'request' && e.method === 'tools/call' && e.message?.includes('receipt'))!;
    const request = await MessageSigner.verifyMessage(call.message!, { peer: CLIENT.toPeer(), clockSkewSec: Number.POSITIVE_INFINITY });
    expect(request).toMatchObject({ valid: true, signerDid: CLIENT.did, digest: call.digest });
    const answerEntry = entries.find((e) => e.operation === 'response' && e.details?.in_reply_to === request.nonce)!;
    const answer = await MessageSigner.verifyMessage(answerEntry.message!, { peer: SERVER.toPeer(), clockSkewSec: Number.POSITIVE_INFINITY });
    expect(answer).toMatchObject({ valid: true, signerDid: SERVER.did, inReplyTo: request.nonce });
    expect(JSON.stringify(answer.message)).toContain('receipt ✓');
    // The client's key comes from the kept handshake in the same file.
    expect(entries.some((e) => e.operation === 'handshake' && e.message?.includes(CLIENT.publicKeyHex))).toBe(true);
  });

  test('one changed byte anywhere: the line holding it is named (sampled positions in every line)', async () => {
    const starts = lineStarts(bytes);
    const ends = starts.map((_, i) => (i + 1 < starts.length ? starts[i + 1]! - 1 : bytes.length - 1));
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let checked = 0;
    for (let line = 0; line < starts.length; line++) {
      const start = starts[line]!;
      const end = ends[line]!; // the newline
      // The line's first bytes, its prev, its last bytes (a signature's hex on a checkpoint), its newline, and more
      // at random; each flipped in its low bit or its case bit.
      const positions = new Set([start, start + 1, start + 25, end - 1, end - 70, end]);
      for (let k = 0; k < 4; k++) positions.add(start + Math.floor(random() * (end - start + 1)));
      for (const offset of positions) {
        if (offset < start || offset > end) continue;
        const mask = random() < 0.5 ? 0x01 : 0x20;
        const changed = Buffer.from(bytes);
        changed[offset]! ^= mask;
        const result = await verifyAuditFile(changed, { serverKeys: [SERVER] });
        const where = `byte ${offset} of line ${line + 1} ^ 0x${mask.toString(16)}: ${JSON.stringify(result.failure)}`;
        expect({ where, ok: result.ok, line: result.failure?.line }).toEqual({ where, ok: false, line: lineOf(starts, offset) });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(starts.length * 6);
  }, 60_000);

  test('the CLI names the changed line: exit 1', async () => {
    const starts = lineStarts(bytes);
    const changed = Buffer.from(bytes);
    const target = 3; // an entry in the middle of the first checkpointed run
    changed[starts[target - 1]! + 40]! ^= 0x01;
    const bad = tmp.path('changed.jsonl');
    writeFileSync(bad, changed);
    const result = await runCli(['audit', 'verify', bad, '--server-key', SERVER.publicKeyHex]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`^invalid: line ${target}: `));
  });

  test('the tail cut after the last checkpoint is reported as a truncation (an error with --require-closed)', async () => {
    const starts = lineStarts(bytes);
    // Drop the final checkpoint and the entries before it back to the previous checkpoint + 1 line.
    const text = bytes.toString('utf8').trimEnd().split('\n');
    const lastPlain = text.map((l, i) => ({ l: JSON.parse(l) as { type: string; final?: boolean }, i })).filter((x) => x.l.type === 'checkpoint' && !x.l.final).at(-1)!.i;
    const cut = bytes.subarray(0, starts[lastPlain + 2]!); // the last plain checkpoint and one entry after it
    const loose = await verifyAuditFile(cut, { serverKeys: [SERVER] });
    expect(loose).toMatchObject({ ok: true, closed: false, lastCheckpointLine: lastPlain + 1, unsignedTail: 1 });
    expect(loose.warnings.join('\n')).toMatch(/does not end with a final checkpoint .*the tail was truncated/);
    const strict = await verifyAuditFile(cut, { serverKeys: [SERVER], requireClosed: true });
    expect(strict).toMatchObject({ ok: false, failure: { line: lastPlain + 2, reason: 'not_closed' } });
    const file = tmp.path('cut.jsonl');
    writeFileSync(file, cut);
    const cli = await runCli(['audit', 'verify', file, '--server-key', SERVER.publicKeyHex, '--require-closed']);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/^invalid: line \d+: not_closed: no final checkpoint/);
    // Cut inside a line: a torn last line, whatever the options.
    const torn = await verifyAuditFile(bytes.subarray(0, bytes.length - 10), { serverKeys: [SERVER] });
    expect(torn).toMatchObject({ ok: false, failure: { line: starts.length, reason: 'torn_line' } });
    // Cut at the head: the first line is no start line.
    const headless = await verifyAuditFile(bytes.subarray(starts[1]!), { serverKeys: [SERVER] });
    expect(headless).toMatchObject({ ok: false, failure: { line: 1, reason: 'chain_broken' } });
  });

  test('a line removed, or two lines swapped, breaks the chain at that place', async () => {
    const lines = bytes.toString('utf8').trimEnd().split('\n');
    const removed = [...lines.slice(0, 4), ...lines.slice(5)].join('\n') + '\n';
    expect((await verifyAuditFile(Buffer.from(removed), { serverKeys: [SERVER] })).failure).toMatchObject({
      line: 4,
      reason: 'chain_broken',
      detail: expect.stringContaining('or lines were removed or inserted between them'),
    });
    const swapped = [...lines.slice(0, 3), lines[4], lines[3], ...lines.slice(5)].join('\n') + '\n';
    expect((await verifyAuditFile(Buffer.from(swapped), { serverKeys: [SERVER] })).failure).toMatchObject({ reason: 'chain_broken' });
  });
});

describe('the file sink and the chain', () => {
  test('reopening a file appends a segment linked to its last line; a torn file is refused', async () => {
    const path = tmp.path('reopen.jsonl');
    await recordSession(path, { checkpointEvery: 0, keepMessages: false });
    await recordSession(path, { checkpointEvery: 0, keepMessages: false });
    const result = await verifyAuditFile(readFileSync(path), { serverKeys: [SERVER] });
    expect(result).toMatchObject({ ok: true, segments: 2, closed: true, messagesVerified: 0 });
    writeFileSync(path, readFileSync(path).subarray(0, -1));
    await expect(openAuditFile(path, { identity: SERVER })).rejects.toThrow(/does not end with a newline/);
  }, 30_000);

  test('a checkpoint is written after T ms without waiting for N entries', async () => {
    const lines: string[] = [];
    const chain = new AuditChain({ identity: SERVER, write: (l) => void lines.push(l), checkpointEvery: 0, checkpointIntervalMs: 50 });
    chain.log.record({ operation: 'rejected', verified: false, reason: 'unknown_session' });
    for (const deadline = Date.now() + 10_000; lines.length < 3 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    await chain.flush();
    expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['start', 'entry', 'checkpoint']);
    await chain.close();
    const result = await verifyAuditFile(Buffer.from(lines.join('')), { serverKeys: [SERVER], requireClosed: true });
    expect(result).toMatchObject({ ok: true, checkpoints: 2, closed: true });
  });

  test('a checkpoint signature is not a message signature: it does not verify under the message context', async () => {
    const lines: string[] = [];
    const chain = new AuditChain({ identity: SERVER, write: (l) => void lines.push(l) });
    await chain.close();
    const checkpoint = JSON.parse(lines[1]!) as Record<string, unknown>;
    const { signature, ...unsigned } = checkpoint;
    // docs/AUDIT.md: SHA3-256 of the canonical JSON of the line without its signature, signed in its own context.
    const digest = createHash('sha3-256').update(canonicalJson(unsigned)).digest();
    const key = SERVER.toPeer().verifyingKey;
    const sig = Buffer.from(signature as string, 'hex');
    expect(await key.verify(digest, sig, AUDIT_CHECKPOINT_CONTEXT)).toBe(true);
    expect(new TextDecoder().decode(AUDIT_CHECKPOINT_CONTEXT)).toBe('pqc-mcp/audit/v1/checkpoint');
    expect(await key.verify(digest, sig, new TextEncoder().encode('pqc-mcp/v2/message'))).toBe(false);
    expect(await key.verify(digest, sig, new Uint8Array(0))).toBe(false);
  });

  test('a failing write stops the chain (fail closed); close() rejects with the failure', async () => {
    let n = 0;
    const errors: unknown[] = [];
    const chain = new AuditChain({
      identity: SERVER,
      write: () => {
        if (++n === 2) throw new Error('disk full');
      },
      onError: (err) => errors.push(err),
    });
    chain.log.record({ operation: 'rejected', verified: false });
    chain.log.record({ operation: 'rejected', verified: false });
    await expect(chain.close()).rejects.toThrow('disk full');
    expect({ writes: n, errors: errors.length, failed: chain.failed }).toEqual({ writes: 2, errors: 1, failed: true });
  });
});
