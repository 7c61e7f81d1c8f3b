/**
 * `pnpm example:server <express|fastify|hono>`: starts that framework's example server (examples/<name>-server.ts).
 * The environment is the examples' own (PORT, PQC_IDENTITY, PQC_PROFILES, PQC_JSON, PQC_REDIS_URL).
 */
const FRAMEWORKS = ['express', 'fastify', 'hono'] as const;
const name = process.argv[2];
if (!FRAMEWORKS.includes(name as (typeof FRAMEWORKS)[number])) {
  process.stderr.write(`usage: pnpm example:server <${FRAMEWORKS.join('|')}>\n`);
  process.exit(2);
}
await import(`../examples/${name}-server.ts`);
