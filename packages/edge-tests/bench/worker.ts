/**
 * workerd: `GET /?op=sign&n=5` runs the operation n times and answers when done. On Cloudflare a Worker's clock does
 * not advance while it computes (timers move only on I/O, against side channels), so the driver times the requests
 * from outside, less the time of `op=none`: the same method works locally and deployed.
 */
import { prepare, type Operation } from './cost.js';

let bench: ReturnType<typeof prepare> | undefined;

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const op = (url.searchParams.get('op') ?? 'none') as Operation;
    const n = Number(url.searchParams.get('n') ?? 1);
    const ready = await (bench ??= prepare());
    if (url.searchParams.has('info')) return Response.json({ backend: ready.backend });
    await ready.run(op, n);
    return new Response('ok');
  },
};
