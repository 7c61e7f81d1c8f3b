/**
 * A network middlebox for the hostile suite: a real HTTP proxy on loopback between a client and a server, which sees
 * every byte and may change, drop, replay or forge requests and answers. Everything the protocol must withstand from
 * the network is done through it, over real sockets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the middlebox received it. */
export interface SeenRequest {
  method: string;
  /** Path and query, as received. */
  path: string;
  headers: Headers;
  body: Uint8Array;
}

/** What the middlebox does with one exchange. */
export interface Tamper {
  /** Rewrites the request before it goes upstream (default: as received). Return `undefined` to answer without forwarding. */
  request?(request: SeenRequest): SeenRequest | undefined | Promise<SeenRequest | undefined>;
  /** Rewrites the upstream's answer (default: as received); `request` is what was forwarded (or not). */
  response?(answer: Response | undefined, request: SeenRequest): Response | Promise<Response>;
}

export interface Middlebox {
  /** The middlebox's URL for the upstream's URL path: the client talks to this. */
  url(upstreamUrl: string): string;
  /** Every request received, in order. */
  readonly requests: SeenRequest[];
  /** Changes what the middlebox does from now on. */
  tamper: Tamper;
  close(): Promise<void>;
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host']);

async function readAll(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

async function write(res: ServerResponse, answer: Response): Promise<void> {
  const headers: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!HOP.has(name) && name !== 'content-encoding') headers[name] = value;
  });
  res.writeHead(answer.status, headers);
  if (!answer.body) {
    res.end();
    return;
  }
  const reader = answer.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch {
    // the upstream stream broke: end what was sent
  }
  res.end();
}

/** Starts a middlebox in front of the server at `upstreamOrigin` (e.g. `http://127.0.0.1:4321`). */
export async function startMiddlebox(upstreamOrigin: string, tamper: Tamper = {}): Promise<Middlebox> {
  const requests: SeenRequest[] = [];
  const box = { tamper };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const seen: SeenRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: new Headers(Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : Array.isArray(v) ? v.map((x) => [k, x] as [string, string]) : [[k, v] as [string, string]]))),
        body: await readAll(req),
      };
      requests.push(seen);
      const forwarded = box.tamper.request ? await box.tamper.request(seen) : seen;
      let answer: Response | undefined;
      if (forwarded) {
        const headers = new Headers(forwarded.headers);
        for (const name of HOP) headers.delete(name);
        answer = await fetch(new URL(forwarded.path, upstreamOrigin), {
          method: forwarded.method,
          headers,
          body: forwarded.method === 'GET' || forwarded.method === 'HEAD' ? undefined : (forwarded.body as Uint8Array<ArrayBuffer>),
          redirect: 'manual',
        });
      }
      const out = box.tamper.response ? await box.tamper.response(answer, forwarded ?? seen) : answer;
      if (!out) {
        res.destroy();
        return;
      }
      await write(res, out);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (upstreamUrl) => {
      const u = new URL(upstreamUrl);
      return `http://127.0.0.1:${port}${u.pathname}${u.search}`;
    },
    requests,
    get tamper() {
      return box.tamper;
    },
    set tamper(t: Tamper) {
      box.tamper = t;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends raw bytes over a fresh TCP connection and resolves everything the server wrote until it closed (or `ms`). */
export async function rawExchange(port: number, bytes: string | Uint8Array, ms = 5000): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise<string>((resolve, reject) => {
    let data = '';
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(data);
    }, ms);
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (data) resolve(data);
      else reject(err);
    });
  });
}

/**
 * A client that sends a whole request before it reads anything (as simple clients and many proxies do): `head` and
 * `body` are written with reading paused, the client waits until every byte was accepted and `settleMs` more, then
 * reads what the server left it. A server that closes its socket while body bytes are still arriving resets the
 * connection, and the reset discards an answer the client had not read yet: this client then reads nothing.
 */
export async function sendAllThenRead(port: number, head: string, body: Uint8Array, settleMs = 200, ms = 10_000): Promise<{ text: string; error?: string }> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    let text = '';
    let error: string | undefined;
    let done = false;
    const socket = connect(port, '127.0.0.1');
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(error === undefined ? { text } : { text, error });
    };
    const timer = setTimeout(finish, ms);
    socket.pause();
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
      // A write failed (the server went away): what it had sent may still be readable.
      socket.resume();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('connect', () => {
      socket.write(head);
      socket.write(body, () => {
        setTimeout(() => socket.resume(), settleMs);
      });
    });
  });
}

/**
 * Two requests on one kept-alive connection, the second written when the connection has been idle for `idleMs`, and
 * this thread then blocked until `blockMs` past that moment, from a setImmediate callback: in the next turn of the
 * event loop the timers run before the sockets are read, so a server (in this process) whose idle timeout is
 * `idleMs` closes the connection with the request unread, exactly as when a request and the server's close cross on
 * the wire. Deterministic: no race left to chance. Returns both raw answers and the error the second one met.
 */
export async function requestAfterIdle(port: number, request: string, idleMs: number, blockMs = 150): Promise<{ first: string; second: string; error?: string }> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    let buffer = '';
    let first: string | undefined;
    let error: string | undefined;
    let done = false;
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ first: first ?? buffer, second: first === undefined ? '' : buffer, ...(error === undefined ? {} : { error }) });
    };
    /** Whether `buffer` holds one whole answer (with a Content-Length, as the requests of the suites get). */
    const whole = () => {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(buffer.slice(0, end))?.[1];
      return length !== undefined && buffer.length - end - 4 >= Number(length);
    };
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      if (first === undefined && whole()) {
        first = buffer;
        buffer = '';
        const answered = performance.now();
        setTimeout(() => {
          setImmediate(() => {
            socket.write(request);
            while (performance.now() < answered + idleMs + blockMs) {
              // Blocked, as a busy server is, while the idle timeout comes due.
            }
            setTimeout(finish, 1000);
          });
        }, Math.max(0, idleMs - 100));
      } else if (first !== undefined && whole()) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
      finish();
    });
    socket.on('close', finish);
  });
}
