/**
 * An incremental rewriter of `text/event-stream` bodies: each event's `data` goes through a function (sign on the
 * server, verify and strip on the client) as soon as the event is complete; comments, `retry:` lines and events
 * without data pass through. Event ids are removed everywhere: this protocol has no stream resumption (§4), and a
 * resumed event would carry an old answer under a fresh signature. Nothing is buffered beyond the current event,
 * and an event longer than `maxEventChars` ends the stream with an error.
 */

/**
 * Rewrites one event's data. Return the new data (one line), several lines to send one event each (none to drop the
 * event), or throw to end the stream with that error.
 */
export type SSEDataTransform = (data: string, event: { event?: string }) => Promise<string | string[]>;

const encoder = new TextEncoder();

/** Thrown into the stream when an event grows past the bound. */
export class EventTooLargeError extends Error {
  constructor(readonly maxEventChars: number) {
    super(`an event of the stream exceeds ${maxEventChars} characters`);
    this.name = 'EventTooLargeError';
  }
}

/**
 * A `TransformStream` over the bytes of an event stream that rewrites each event's data with `transform`. `atEnd`,
 * called once the stream ended whole, gives the data of events to add last (one event each).
 */
export function transformEventStream(
  transform: SSEDataTransform,
  maxEventChars: number = Number.POSITIVE_INFINITY,
  atEnd?: () => string[],
): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let buffer = '';
  let lines: string[] = [];
  let eventChars = 0;

  async function dispatch(controller: TransformStreamDefaultController<Uint8Array>): Promise<void> {
    const eventLines = lines.filter((line) => line !== 'id' && !line.startsWith('id:'));
    lines = [];
    eventChars = 0;
    let data: string[] | undefined;
    let eventName: string | undefined;
    for (const line of eventLines) {
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') (data ??= []).push(value);
      else if (field === 'event') eventName = value;
    }
    const joined = data?.join('\n') ?? '';
    if (joined.trim() === '') {
      if (eventLines.length > 0) controller.enqueue(encoder.encode(eventLines.join('\n') + '\n\n'));
      return;
    }
    const rewritten = await transform(joined, { event: eventName });
    if (Array.isArray(rewritten)) {
      for (const data of rewritten) controller.enqueue(encoder.encode(`data: ${data}\n\n`));
      return;
    }
    const out: string[] = [];
    let placed = false;
    for (const line of eventLines) {
      if (line === 'data' || line.startsWith('data:')) {
        if (!placed) out.push(`data: ${rewritten}`);
        placed = true;
      } else {
        out.push(line);
      }
    }
    controller.enqueue(encoder.encode(out.join('\n') + '\n\n'));
  }

  async function consume(controller: TransformStreamDefaultController<Uint8Array>, final: boolean): Promise<void> {
    let start = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = start; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c === 10) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 13) {
          // A CR at the very end may be the first half of CRLF: wait for more input.
          if (i + 1 === buffer.length && !final) break;
          end = i;
          next = buffer.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
          break;
        }
      }
      if (end === -1) break;
      const line = buffer.slice(start, end);
      start = next;
      if (line === '') {
        if (lines.length > 0) await dispatch(controller);
      } else if (line.startsWith(':') && lines.length === 0) {
        controller.enqueue(encoder.encode(line + '\n')); // a keep-alive comment between events: pass at once
      } else {
        eventChars += line.length + 1;
        if (eventChars > maxEventChars) throw new EventTooLargeError(maxEventChars);
        lines.push(line);
      }
    }
    buffer = buffer.slice(start);
    if (buffer.length + eventChars > maxEventChars) throw new EventTooLargeError(maxEventChars);
  }

  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      buffer += decoder.decode(chunk, { stream: true });
      await consume(controller, false);
    },
    async flush(controller) {
      buffer += decoder.decode();
      await consume(controller, true);
      // An unterminated last event is dropped, as an EventSource would: its data was never complete.
      lines = [];
      for (const data of atEnd?.() ?? []) controller.enqueue(encoder.encode(`data: ${data}\n\n`));
    },
  });
}
