/** What the tests of @pqc-mcp/mcp share: identities, the example server, a verifying in-memory client. */
import { MessageSigner, PQCHandshake, type AgentIdentity, type PQCSession } from '@pqc-mcp/core';
import { seededIdentity } from '@pqc-mcp/test-kit';
import { z } from 'zod';
import { PQCMCPServer, type PQCMCPServerOptions } from '../src/index.js';

export const SERVER = seededIdentity(41, 'ML-DSA-65', 'mcp-server');
export const CLIENT = seededIdentity(42, 'ML-DSA-65', 'mcp-client');
export const OTHER = seededIdentity(43, 'ML-DSA-65', 'mcp-other');

/** The example tools: greet (zod), add (zod, numbers), echo (JSON Schema), whoami (the verified caller). */
export function exampleServer(options: Partial<PQCMCPServerOptions> = {}): PQCMCPServer {
  return new PQCMCPServer({ identity: SERVER, name: 'test-server', version: '1.2.3', cryptoPool: false, ...options })
    .tool('greet', { description: 'Greets someone', inputSchema: z.object({ name: z.string() }) }, ({ name }) => `Hello, ${name}!`)
    .tool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, ({ a, b }) => a + b)
    .tool(
      'echo',
      {
        description: 'Echoes the message back',
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
      (args) => ({ content: [{ type: 'text', text: String(args.message) }] }),
    )
    .tool('whoami', { description: 'The verified caller' }, (_args, context) => context.pqc?.peerDid ?? 'nobody');
}

/** The text of the first text content of a tool result. */
export function textOf(result: { content?: unknown }): string | undefined {
  const content = result.content as { type: string; text?: string }[] | undefined;
  return content?.find((c) => c.type === 'text')?.text;
}

/** A client in memory: handshake through `handleHandshake`, signed requests through `handleRequest`, verified answers. */
export class MemoryClient {
  session!: PQCSession;
  readonly signer: MessageSigner;
  #id = 1;

  constructor(
    readonly server: PQCMCPServer,
    readonly identity: AgentIdentity = CLIENT,
  ) {
    this.signer = new MessageSigner(identity);
  }

  async handshake(): Promise<PQCSession> {
    const { request, pending } = await PQCHandshake.initiate(this.identity, { serverDid: this.server.did });
    const response = await this.server.handleHandshake(request);
    this.session = await PQCHandshake.complete(response, this.identity, pending, { serverDid: this.server.did });
    return this.session;
  }

  sign(message: object) {
    return this.signer.signMessage(message, { sessionId: this.session.sessionId, http: { method: 'POST', path: '/mcp', mcpSessionId: null } });
  }

  /** Sends a request; returns the verified answer without `_pqc` (throws with the reason when it is refused). */
  async request(method: string, params?: object): Promise<Record<string, unknown>> {
    const signed = await this.sign({ jsonrpc: '2.0', id: this.#id++, method, ...(params ? { params } : {}) });
    const text = await this.server.handleRequest(signed.text);
    const result = await MessageSigner.verifyMessage(text, { peer: this.session.peer });
    if (!result.valid) throw new Error(`answer refused: ${result.reason}: ${text.slice(0, 200)}`);
    if (result.inReplyTo !== signed.nonce || result.sessionId !== this.session.sessionId) throw new Error('the answer binds another request');
    return result.message!;
  }
}
