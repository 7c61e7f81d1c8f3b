/**
 * What the gateway forwards verified requests to: an HTTP MCP server (`http-upstream.ts`) or stdio MCP server
 * processes it runs itself (`stdio-upstream.ts`). Both answer with a web `Response` that core then signs, message by
 * message; nothing reaches an upstream before core verified it.
 */
import { readAtMost } from '@pqc-mcp/core/internal';
import type { PQCRequestContext } from '@pqc-mcp/core';
import type { ConnectionFacts } from './headers.js';

/** What the gateway hands an upstream with each verified request. */
export interface ForwardInfo extends ConnectionFacts {
  /** The request target exactly as received, which core checked the client signed (path and query). */
  target: string;
  /** Aborted when the client goes away or the gateway stops. */
  signal: AbortSignal;
  /** Records what went wrong upstream, for the request's log line. */
  report(verdict: 'upstream_error', reason: string): void;
}

export interface Upstream {
  /** What the start-up line names (the URL, or the command). */
  readonly description: string;
  /** Checks at start that the upstream answers; rejects with a one-line reason when it does not. */
  check(): Promise<void>;
  /** Serves one verified request (its body is core's verified re-serialization, without `_pqc`). */
  serve(request: Request, parsedBody: unknown, context: PQCRequestContext, info: ForwardInfo): Promise<Response>;
  /** Stops what the upstream runs (child processes); idempotent. */
  close(): Promise<void>;
}

/** The JSON-RPC id of a single request body, for an error about it (null for a batch or a notification). */
export function requestIdOf(parsedBody: unknown): string | number | null {
  const id = parsedBody !== null && typeof parsedBody === 'object' && !Array.isArray(parsedBody) ? (parsedBody as { id?: unknown }).id : undefined;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** A JSON-RPC error answer of the gateway's own (core signs it like any application answer). */
export function jsonRpcErrorResponse(status: number, id: string | number | null, code: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** JSON-RPC code of an internal error. */
export const INTERNAL_ERROR = -32603;

/** Thrown into an upstream stream that grows past the gateway's bound. */
export class UpstreamTooLargeError extends Error {
  override readonly name = 'UpstreamTooLargeError';
}

/** Reads a whole body of at most `maxBytes`; throws `UpstreamTooLargeError` past it (and cancels the rest). */
export async function readBounded(body: ReadableStream<Uint8Array<ArrayBuffer>>, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await readAtMost(body, maxBytes);
  if (!bytes) throw new UpstreamTooLargeError(`the upstream's answer exceeds ${maxBytes} bytes`);
  return bytes;
}

/**
 * A byte-level bound on each event of an event stream: the stream errors as soon as one event (the bytes since the
 * last blank line) grows past `maxEventBytes`, so a hostile upstream cannot make the gateway buffer without end
 * (core signs an event once it is complete). Line ends are LF, CRLF or CR, as in the SSE grammar.
 */
export function boundEvents(maxEventBytes: number, onTooLarge: () => void): TransformStream<Uint8Array, Uint8Array> {
  let eventBytes = 0;
  let lineBytes = 0;
  let lastCR = false;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b === 10 && lastCR) {
          lastCR = false; // the LF of a CRLF: the line ended at the CR
          continue;
        }
        lastCR = b === 13;
        if (b === 10 || b === 13) {
          if (lineBytes === 0) eventBytes = 0; // a blank line ends the event
          lineBytes = 0;
        } else {
          lineBytes++;
          eventBytes++;
        }
        if (eventBytes > maxEventBytes) {
          onTooLarge();
          controller.error(new UpstreamTooLargeError(`an event of the upstream's stream exceeds ${maxEventBytes} bytes`));
          return;
        }
      }
      controller.enqueue(chunk);
    },
  });
}

/** True when a body stream holds no byte at all (read to its end, at most one non-empty chunk). */
export async function isEmptyBody(body: ReadableStream<Uint8Array>): Promise<boolean> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return true;
      if (value.byteLength > 0) return false;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
