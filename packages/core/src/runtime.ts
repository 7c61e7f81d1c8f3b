/**
 * Reaching Node built-ins without a static `node:` import, so the core's bundles stay web-standard
 * (workerd, browsers). `process.getBuiltinModule` exists on Node >= 20.16, Bun and Deno.
 */
interface ProcessLike {
  getBuiltinModule?: (id: string) => unknown;
  versions?: Record<string, string | undefined>;
}

/** The Node built-in module `id` (for example `node:crypto`), or `undefined` where the runtime has none. */
export function nodeBuiltin<T>(id: string): T | undefined {
  const proc = (globalThis as { process?: ProcessLike }).process;
  if (!proc || typeof proc.getBuiltinModule !== 'function') return undefined;
  try {
    return (proc.getBuiltinModule(id) as T | undefined) ?? undefined;
  } catch {
    return undefined;
  }
}
