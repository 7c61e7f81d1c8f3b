/**
 * Tool pinning against silent changes ("rug pulls"): the first complete `tools/list` of a server is pinned (each
 * tool's SHA3-256 digest, keyed by the server's DID, with the DID that signed the answer); a later listing that
 * differs raises `onToolsChanged` and the changed or new tools are refused (`ToolPinError`) until the application
 * approves them. The transport-neutral engine: `PQCMCPClient` and `pinTools` feed it pages and ask it before calls.
 */
import type { RequestOptions, Tool } from '@modelcontextprotocol/client';
import { ToolPinError, toolDefinition, toolDigest, type ToolDefinition, type ToolPin, type ToolPinStore } from '@pqc-mcp/core';

/** One version of a tool: its pinned fields, their digest, and the DID whose signed `tools/list` answer carried it. */
export interface ToolVersion {
  name: string;
  definition: ToolDefinition;
  /** Lowercase hex SHA3-256 of the canonical JSON of `definition`. */
  digest: string;
  /** The DID that signed the `tools/list` answer (for a pinned version: the answer it was approved from). */
  signer: string;
}

/** A tool whose definition differs from the approved one. */
export interface ToolChange {
  name: string;
  before: ToolVersion;
  after: ToolVersion;
}

/** What changed between the approved tools of a server and its current listing. */
export interface ToolsChangedEvent {
  serverDid: string;
  /** The DID that signed the listing showing the change. */
  signer: string;
  /** Tools listed now and never approved: refused (`tool_added`) until approved. */
  added: ToolVersion[];
  /** Approved tools no longer listed (calls to them are refused, `tool_not_listed`); approving forgets them. */
  removed: ToolVersion[];
  /** Tools whose definition changed: refused (`tool_changed`) until approved. */
  changed: ToolChange[];
  /** Groups of names (listed or pinned) that differ only by case or Unicode compatibility form, e.g. `read_file` and `Read_File`. */
  confusable: string[][];
}

/** Called when a listing differs from the approved tools. Resolve `true` to approve exactly this change. */
export type ToolsChangedHandler = (event: ToolsChangedEvent) => boolean | void | Promise<boolean | void>;

/** What to approve: every pending change, the changes of these tool names, or exactly the versions an event showed. */
export type ToolApproval = readonly string[] | ToolsChangedEvent;

/** Options of tool pinning (`PQCMCPClient`'s `toolPins`, `pinTools`). */
export interface ToolPinningOptions {
  /** Where approved tools are kept: `MemoryToolPinStore` (core) or `FileToolPinStore` (`@pqc-mcp/core/node`). */
  store: ToolPinStore;
  /** Told of every new difference between the server's tools and the approved ones; `true` approves it. */
  onToolsChanged?: ToolsChangedHandler;
  /** Bound on the `tools/list` pages of one listing (default 100): a server paginating without end is refused. */
  maxPages?: number;
  /** Bound on the tools of one listing (default 10000). */
  maxTools?: number;
}

/** What the engine needs from a client: one page of `tools/list`, the pinned server's DID, the DID that signed. */
export interface ToolListSource {
  listPage(cursor: string | undefined, options?: RequestOptions): Promise<{ tools: Tool[]; nextCursor?: string | undefined }>;
  /** The server's DID (pinned by the handshake); `undefined` before it. */
  serverDid(): string | undefined;
  /** The DID whose signature the last answer carried (the verified session peer). */
  signer(): string | undefined;
}

/** Default bound on the `tools/list` pages of one listing. */
export const DEFAULT_MAX_PAGES = 100;
const DEFAULT_MAX_TOOLS = 10_000;

interface Listed {
  serverDid: string;
  signer: string;
  tools: Map<string, { tool: Tool; version: ToolVersion }>;
}

/** Checks the options of tool pinning (a `TypeError` names a bad one). */
export function validatePinningOptions(options: ToolPinningOptions, where: string): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${where}: tool pinning needs options ({ store })`);
  const store = options.store as Partial<ToolPinStore> | undefined;
  if (!store || typeof store.get !== 'function' || typeof store.set !== 'function') throw new TypeError(`${where}: "store" must be a ToolPinStore (get, set)`);
  if (options.onToolsChanged !== undefined && typeof options.onToolsChanged !== 'function') throw new TypeError(`${where}: "onToolsChanged" must be a function`);
  for (const key of ['maxPages', 'maxTools'] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new TypeError(`${where}: "${key}" must be a positive integer`);
  }
}

/** The tool pinning of one client (one server): lists, diffs against the store, refuses unapproved calls. */
export class ToolPinning {
  readonly #options: ToolPinningOptions;
  readonly #source: ToolListSource;
  #listed: Listed | undefined;
  #pins = new Map<string, ToolPin>();
  #stale = true;
  #listing: Promise<void> | undefined;
  #raised: string | undefined;
  #refreshing = false;

  constructor(options: ToolPinningOptions, source: ToolListSource) {
    validatePinningOptions(options, 'tool pinning');
    this.#options = options;
    this.#source = source;
  }

  /**
   * Lists every page of the server's tools, pins them on first sight, otherwise compares them with the approved ones
   * (raising `onToolsChanged` for a new difference). Resolves with the tools callable now: those whose current
   * definition is approved. A listing that cannot be trusted whole throws `ToolPinError('tools_list_invalid')`.
   */
  async list(options?: RequestOptions): Promise<Tool[]> {
    await this.#freshListing(options);
    await this.#raise();
    return this.#approvedTools();
  }

  /** Throws `ToolPinError` unless `name` is listed now in its approved version (listing first if needed). */
  async assertCallable(name: string): Promise<void> {
    if (this.#stale || !this.#listed) await this.list();
    const listed = this.#listed!;
    const current = listed.tools.get(name);
    const opts = { serverDid: listed.serverDid, tool: name };
    if (!current) throw new ToolPinError('tool_not_listed', `tool ${JSON.stringify(name)} is not in the server's tools/list`, opts);
    const pin = this.#pins.get(name);
    if (!pin) throw new ToolPinError('tool_added', `tool ${JSON.stringify(name)} is new and not approved yet (approveTools)`, opts);
    if (pin.digest !== current.version.digest) {
      throw new ToolPinError('tool_changed', `tool ${JSON.stringify(name)} changed since it was approved (approveTools)`, opts);
    }
  }

  /** The server said its tools changed (`notifications/tools/list_changed`): calls wait for a new listing, started now. */
  markStale(): void {
    this.#stale = true;
    if (this.#refreshing) return;
    this.#refreshing = true;
    this.list()
      .catch(() => {}) // a failed listing leaves the tools stale: the next call lists again, and throws if it fails
      .finally(() => {
        this.#refreshing = false;
      });
  }

  /** A new connection: nothing is callable before a fresh listing. */
  reset(): void {
    this.#listed = undefined;
    this.#stale = true;
    this.#raised = undefined;
  }

  /** The difference between the last listing and the approved tools, or `undefined` when there is none. */
  get pending(): ToolsChangedEvent | undefined {
    if (!this.#listed) return undefined;
    const event = diff(this.#listed, this.#pins);
    return isEmpty(event) ? undefined : event;
  }

  /**
   * Approves pending changes (all, those of some names, or exactly the versions of an event: a version the server
   * no longer lists throws `approval_stale`), records them in the store and resolves with the names approved.
   */
  async approve(selection?: ToolApproval): Promise<string[]> {
    const listed = this.#listed;
    if (!listed) throw new Error('approveTools: nothing listed yet (list the tools first)');
    const pending = diff(listed, this.#pins);
    let added = pending.added;
    let changed = pending.changed.map((c) => c.after);
    let removed = pending.removed;
    if (Array.isArray(selection)) {
      const names = new Set(selection as readonly string[]);
      added = added.filter((v) => names.has(v.name));
      changed = changed.filter((v) => names.has(v.name));
      removed = removed.filter((v) => names.has(v.name));
    } else if (selection !== undefined) {
      const event = selection as ToolsChangedEvent;
      const stale = (what: string): never => {
        throw new ToolPinError('approval_stale', `approveTools: ${what}; nothing approved (list again and approve the new change)`, {
          serverDid: listed.serverDid,
        });
      };
      if (event.serverDid !== listed.serverDid) stale(`the change is of server ${event.serverDid}`);
      const wanted = [...event.added, ...event.changed.map((c) => c.after)];
      for (const v of wanted) if (listed.tools.get(v.name)?.version.digest !== v.digest) stale(`tool ${JSON.stringify(v.name)} is no longer listed in that version`);
      for (const v of event.removed) if (listed.tools.has(v.name)) stale(`tool ${JSON.stringify(v.name)} is listed again`);
      const names = new Set(wanted.map((v) => v.name));
      const gone = new Set(event.removed.map((v) => v.name));
      added = added.filter((v) => names.has(v.name));
      changed = changed.filter((v) => names.has(v.name));
      removed = removed.filter((v) => gone.has(v.name));
    }
    if (added.length + changed.length + removed.length === 0) return [];
    const pins = await this.#loadPins(listed.serverDid);
    const base = pins ?? new Map<string, ToolPin>();
    const now = Date.now();
    for (const v of [...added, ...changed]) base.set(v.name, { name: v.name, digest: v.digest, definition: v.definition, signer: v.signer, pinnedAt: now });
    for (const v of removed) base.delete(v.name);
    await this.#options.store.set(listed.serverDid, [...base.values()]);
    this.#pins = base;
    this.#raised = undefined;
    return [...added, ...changed, ...removed].map((v) => v.name);
  }

  /** Waits for (or starts) a listing when none is current. */
  async #freshListing(options?: RequestOptions): Promise<void> {
    if (!this.#listing) {
      this.#stale = false; // a notification arriving during this listing marks it stale again
      this.#listing = this.#doList(options).finally(() => {
        this.#listing = undefined;
      });
      this.#listing.catch(() => {
        this.#stale = true;
      });
    }
    await this.#listing;
  }

  async #doList(options?: RequestOptions): Promise<void> {
    const serverDid = this.#source.serverDid();
    if (serverDid === undefined) throw new Error('tool pinning: the server is not pinned yet (connect first)');
    const tools = await this.#fetchAll(serverDid, options);
    const signer = this.#source.signer();
    if (signer === undefined) throw new Error('tool pinning: no verified session');
    const listed: Listed = { serverDid, signer, tools: new Map() };
    for (const tool of tools) {
      const definition = toolDefinition(tool as unknown as Tool & Record<string, unknown>);
      const digest = toolDigest(definition as ToolDefinition & Record<string, unknown>);
      listed.tools.set(tool.name, { tool, version: { name: tool.name, definition, digest, signer } });
    }
    let pins = await this.#loadPins(serverDid);
    if (pins === undefined) {
      // First sight of this server: pin everything it lists, vouched for by the signer of this answer.
      const now = Date.now();
      pins = new Map([...listed.tools.values()].map(({ version: v }) => [v.name, { name: v.name, digest: v.digest, definition: v.definition, signer, pinnedAt: now }]));
      await this.#options.store.set(serverDid, [...pins.values()]);
    }
    this.#pins = pins;
    this.#listed = listed;
  }

  /** Every page, refusing what would let a server hide a change: repeated names or cursors, endless pages. */
  async #fetchAll(serverDid: string, options?: RequestOptions): Promise<Tool[]> {
    const maxPages = this.#options.maxPages ?? DEFAULT_MAX_PAGES;
    const maxTools = this.#options.maxTools ?? DEFAULT_MAX_TOOLS;
    const invalid = (what: string): never => {
      throw new ToolPinError('tools_list_invalid', `tools/list of ${serverDid}: ${what}`, { serverDid });
    };
    const tools: Tool[] = [];
    const names = new Set<string>();
    const cursors = new Set<string>();
    let cursor: string | undefined;
    for (let page = 1; ; page++) {
      if (page > maxPages) invalid(`more than ${maxPages} pages`);
      const answer = await this.#source.listPage(cursor, options);
      if (!Array.isArray(answer?.tools)) invalid('an answer without a tools array');
      for (const tool of answer.tools) {
        if (typeof tool?.name !== 'string' || tool.name === '') invalid('a tool without a name');
        if (names.has(tool.name)) invalid(`tool ${JSON.stringify(tool.name)} is listed twice`);
        names.add(tool.name);
        tools.push(tool);
      }
      if (tools.length > maxTools) invalid(`more than ${maxTools} tools`);
      cursor = answer.nextCursor ?? undefined;
      if (cursor === undefined) return tools;
      if (typeof cursor !== 'string' || cursors.has(cursor)) invalid('a pagination cursor repeats');
      cursors.add(cursor);
    }
  }

  async #loadPins(serverDid: string): Promise<Map<string, ToolPin> | undefined> {
    const pins = await this.#options.store.get(serverDid);
    return pins === undefined ? undefined : new Map(pins.map((p) => [p.name, p]));
  }

  /** Raises `onToolsChanged` once per distinct difference; approves it when the handler says `true`. */
  async #raise(): Promise<void> {
    const event = this.pending;
    if (!event) {
      this.#raised = undefined;
      return;
    }
    const key = eventKey(event);
    if (key === this.#raised) return;
    this.#raised = key;
    const handler = this.#options.onToolsChanged;
    if (!handler) return;
    let approved: boolean | void;
    try {
      approved = await handler(event);
    } catch {
      approved = false; // a failing handler approves nothing
    }
    if (approved === true) await this.approve(event);
  }

  #approvedTools(): Tool[] {
    const listed = this.#listed!;
    return [...listed.tools.values()].filter(({ version }) => this.#pins.get(version.name)?.digest === version.digest).map(({ tool }) => tool);
  }
}

/** The difference between a listing and the approved pins. */
function diff(listed: Listed, pins: ReadonlyMap<string, ToolPin>): ToolsChangedEvent {
  const added: ToolVersion[] = [];
  const changed: ToolChange[] = [];
  const removed: ToolVersion[] = [];
  for (const { version } of listed.tools.values()) {
    const pin = pins.get(version.name);
    if (!pin) added.push(version);
    else if (pin.digest !== version.digest) changed.push({ name: version.name, before: pinVersion(pin), after: version });
  }
  for (const pin of pins.values()) if (!listed.tools.has(pin.name)) removed.push(pinVersion(pin));
  return { serverDid: listed.serverDid, signer: listed.signer, added, removed, changed, confusable: confusable([...listed.tools.keys(), ...pins.keys()]) };
}

function pinVersion(pin: ToolPin): ToolVersion {
  return { name: pin.name, definition: pin.definition, digest: pin.digest, signer: pin.signer };
}

function isEmpty(event: ToolsChangedEvent): boolean {
  return event.added.length + event.removed.length + event.changed.length === 0;
}

function eventKey(event: ToolsChangedEvent): string {
  const parts = [...event.added.map((v) => `+${v.name}:${v.digest}`), ...event.changed.map((c) => `~${c.name}:${c.after.digest}`), ...event.removed.map((v) => `-${v.name}`)];
  return JSON.stringify(parts.sort());
}

/** Names that differ only by case or Unicode compatibility form (NFKC, then lower case). */
function confusable(names: readonly string[]): string[][] {
  const groups = new Map<string, Set<string>>();
  for (const name of names) {
    const key = name.normalize('NFKC').toLowerCase();
    let group = groups.get(key);
    if (!group) groups.set(key, (group = new Set()));
    group.add(name);
  }
  return [...groups.values()].filter((g) => g.size > 1).map((g) => [...g].sort());
}
