/**
 * Signing what the application answers (docs/PROTOCOL.md §3, §4): every JSON-RPC message of a JSON body or of an
 * event stream, as it comes, bound to the request (`in_reply_to`) and to the response's `Mcp-Session-Id`. Nothing
 * the application writes leaves unsigned: a body that cannot be signed becomes an internal error.
 */
import { idKey, messageMethod, type SignedMessage } from '../envelope.js';
import { PQCTransportError } from '../errors.js';
import { headersForNewBody, mediaType } from '../http.js';
import { parseLossless, type JsonValue } from '../json/lossless.js';
import { MCP_SESSION_HEADER } from '../protocol.js';
import { transformEventStream } from '../sse.js';
import type { SessionRecord } from '../store/types.js';
import type { RequestFacts, ServerContext } from './context.js';
import { storeCall } from './verify.js';

/** How the messages of one answer are bound to the request (§3). */
export interface ReplyBinding {
  readonly session: SessionRecord;
  /** `in_reply_to` of a response, by the id of the request it answers. */
  readonly byId: ReadonlyMap<string, string>;
  /** `in_reply_to` of every other message: the nonce of the POST's first request; undefined on a GET stream. */
  readonly first: string | undefined;
  /**
   * Answer one JSON body even when the application streams (v1 peers, §7, read one JSON body): the responses of the
   * stream are collected, its notifications dropped.
   */
  readonly json?: boolean;
}

/** The JSON-RPC messages of an event stream's text (each event's data). */
function eventData(text: string): string[] {
  const out: string[] = [];
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data.trim() !== '') out.push(data);
  }
  return out;
}

async function signMessage(ctx: ServerContext, facts: RequestFacts, tree: JsonValue, binding: ReplyBinding, mcpSessionId: string | undefined): Promise<string> {
  if (!(tree instanceof Map)) throw new PQCTransportError('malformed_json', 'the application sent a JSON-RPC message that is not an object');
  const { session } = binding;
  const v2 = session.profile === 2;
  const key = idKey(tree.get('id'));
  const method = messageMethod(tree);
  const inReplyTo = (method === null && key !== undefined ? binding.byId.get(key) : undefined) ?? binding.first;
  const measured = ctx.o.telemetry?.signing({ method, sessionId: session.sessionId, mcpSessionId, algorithm: ctx.o.identity.algorithm });
  let signed: SignedMessage;
  try {
    signed = await ctx.signer.signMessage(tree, {
      sessionId: session.sessionId,
      inReplyTo: v2 ? inReplyTo : undefined,
      mcpSessionId: v2 ? mcpSessionId : undefined,
      includePublicKey: ctx.o.includePublicKey,
      profile: session.profile,
      now: ctx.o.now,
    });
  } catch (err) {
    measured?.(err ?? new Error('signing failed'));
    throw err;
  }
  measured?.();
  // A request to the client: its answer must carry this nonce (§3 step 8).
  if (v2 && method !== null && key !== undefined) {
    await storeCall(() => ctx.o.store.recordServerRequest(session.sessionId, key, signed.nonce, ctx.o.sessionTtlSec));
  }
  ctx.o.audit.record({
    operation: method === null ? 'response' : key !== undefined ? 'request' : 'notification',
    verified: true,
    session_id: session.sessionId,
    peer_did: session.peerDid,
    method,
    signer_did: ctx.o.identity.did,
    algorithm: ctx.o.identity.algorithm,
    signature_truncated: signed.envelope.signature,
    digest: signed.digest,
    details: inReplyTo && v2 ? { in_reply_to: inReplyTo } : null,
    message: ctx.o.audit.keepMessages ? signed.text : undefined,
  });
  facts.result.signed++;
  return signed.text;
}

function internalError(ctx: ServerContext, facts: RequestFacts, session: SessionRecord, detail: string): Response {
  Object.assign(facts.result, { status: 500, detail });
  ctx.o.audit.record({ operation: 'rejected', verified: false, session_id: session.sessionId, peer_did: session.peerDid, details: { detail } });
  return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32603, message: `Internal error: ${detail}` } }, { status: 500 });
}

/** Signs the application's answer: each JSON-RPC message of a JSON body or of an event stream. */
export async function signAnswer(ctx: ServerContext, facts: RequestFacts, response: Response, binding: ReplyBinding): Promise<Response> {
  const { session } = binding;
  const mcpSessionId = response.headers.get(MCP_SESSION_HEADER) ?? undefined;
  if (mcpSessionId !== undefined) {
    // The MCP session belongs to the client it was opened for (§9), in the store, so it holds across instances.
    let owned: boolean;
    try {
      owned = await storeCall(() => ctx.o.store.claimMcpSession(mcpSessionId, session.peerDid, ctx.o.sessionTtlSec));
    } catch {
      return internalError(ctx, facts, session, 'the MCP session could not be recorded');
    }
    if (!owned) return internalError(ctx, facts, session, 'the application answered with an MCP session of another client');
  }
  if (!response.body) return response;
  const type = mediaType(response.headers);
  const init = { status: response.status, statusText: response.statusText, headers: headersForNewBody(response.headers) };
  if (type === 'text/event-stream' && binding.json) {
    // A v1 peer reads one JSON body: the stream's responses (the JSON-RPC answers to its requests), signed.
    const responses = eventData(await response.text())
      .map((data) => parseLossless(data))
      .filter((m) => m instanceof Map && !m.has('method'));
    const headers = headersForNewBody(response.headers);
    headers.set('content-type', 'application/json');
    const signed = await Promise.all(responses.map((m) => signMessage(ctx, facts, m, binding, mcpSessionId)));
    return new Response(signed.length === 1 ? signed[0] : `[${signed.join(',')}]`, { status: response.status, statusText: response.statusText, headers });
  }
  if (type === 'text/event-stream') {
    const stream = response.body.pipeThrough(transformEventStream((data) => signMessage(ctx, facts, parseLossless(data), binding, mcpSessionId)));
    return new Response(stream, init);
  }
  if (type !== 'application/json') return response; // not JSON-RPC: the client refuses it as unsigned
  const text = await response.text();
  if (text.trim() === '') return new Response(null, init);
  try {
    const tree = parseLossless(text);
    const out = Array.isArray(tree)
      ? `[${(await Promise.all(tree.map((m) => signMessage(ctx, facts, m, binding, mcpSessionId)))).join(',')}]`
      : await signMessage(ctx, facts, tree, binding, mcpSessionId);
    return new Response(out, init);
  } catch (err) {
    return internalError(ctx, facts, session, `the answer could not be signed (${err instanceof Error ? err.message : String(err)})`);
  }
}
