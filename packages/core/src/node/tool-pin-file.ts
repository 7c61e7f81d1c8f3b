/**
 * `FileToolPinStore`: the approved tools of every server in one JSON file, written atomically (a new file of mode
 * 0600 in the same directory, synced, then renamed over the old one). Fails closed: an unreadable, malformed or
 * edited file (a digest that no longer matches its definition), or one that others may write, throws a
 * `ToolPinError` instead of being treated as empty, and is never overwritten.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isDid } from '../identity.js';
import { ToolPinError, validateToolPins, type ToolPin, type ToolPinStore } from '../tools/pins.js';

/** The file's format version. */
const FORMAT = 1;

interface PinFile {
  version: typeof FORMAT;
  servers: { serverDid: string; tools: ToolPin[] }[];
}

/** A `ToolPinStore` in a JSON file (created on the first `set`, mode 0600). Writes of one store are serialized. */
export class FileToolPinStore implements ToolPinStore {
  /** The file's path. */
  readonly path: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('FileToolPinStore: a file path is required');
    this.path = path;
  }

  /** The pins of `serverDid`, or `undefined` for a server the file does not name (or no file yet). */
  async get(serverDid: string): Promise<readonly ToolPin[] | undefined> {
    const file = await this.#read();
    return file.servers.find((s) => s.serverDid === serverDid)?.tools;
  }

  /** Replaces the pins of `serverDid` (re-reading the file first, so other servers' pins written meanwhile are kept). */
  set(serverDid: string, pins: readonly ToolPin[]): Promise<void> {
    if (!isDid(serverDid)) return Promise.reject(new TypeError('FileToolPinStore.set: serverDid must be a DID'));
    const tools = validateToolPins(structuredClone(pins), 'to write');
    const next = this.#queue.then(async () => {
      const file = await this.#read();
      const servers = file.servers.filter((s) => s.serverDid !== serverDid);
      servers.push({ serverDid, tools });
      await this.#write({ version: FORMAT, servers });
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  async #read(): Promise<PinFile> {
    let text: string;
    try {
      const info = await stat(this.path);
      if (process.platform !== 'win32' && (info.mode & 0o022) !== 0) {
        throw new ToolPinError('pin_store_insecure', `tool pin store ${this.path} is writable by group or others (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`);
      }
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return { version: FORMAT, servers: [] };
      if (err instanceof ToolPinError) throw err;
      throw new ToolPinError('pin_store_corrupt', `tool pin store ${this.path} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    return parsePinFile(text, this.path);
  }

  async #write(file: PinFile): Promise<void> {
    const tmp = join(dirname(this.path), `.${basename(this.path)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(JSON.stringify(file, null, 2) + '\n');
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await handle.close();
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    const dir = await open(dirname(this.path), 'r').catch(() => undefined);
    await dir?.sync().catch(() => {}); // the rename itself durable, where the platform allows
    await dir?.close();
  }
}

/** Parses and checks the whole file (every server's pins), throwing `pin_store_corrupt` for anything amiss. */
function parsePinFile(text: string, path: string): PinFile {
  const corrupt = (what: string): never => {
    throw new ToolPinError('pin_store_corrupt', `tool pin store ${path}: ${what} (fix or remove the file; nothing was trusted)`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return corrupt(`not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return corrupt('not a JSON object');
  const { version, servers } = value as Record<string, unknown>;
  if (version !== FORMAT) return corrupt(`unknown format version ${JSON.stringify(version)}`);
  if (!Array.isArray(servers)) return corrupt('"servers" is not an array');
  const dids = new Set<string>();
  return {
    version: FORMAT,
    servers: servers.map((entry: unknown) => {
      const { serverDid, tools } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
      if (!isDid(serverDid)) return corrupt('a server entry has no DID');
      if (dids.has(serverDid)) return corrupt(`server ${serverDid} appears twice`);
      dids.add(serverDid);
      return { serverDid, tools: validateToolPins(tools, `${path} (server ${serverDid})`) };
    }),
  };
}
