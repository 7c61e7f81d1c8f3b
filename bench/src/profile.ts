/**
 * Reading a V8 CPU profile (`node --cpu-prof`, or the inspector's Profiler): self time per function, the top items, and the share of our own
 * packages. Used by run.ts on the main thread of the signed server (the crypto runs in the pool's workers and libuv's
 * threads, so what this thread spends is the message path, the framework and the MCP SDK).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One function's self time. */
export interface ProfileItem {
  /** `name (file:line)`, the file relative to the repository (or its package in node_modules). */
  item: string;
  /** Where it lives: ours (packages/*), the framework or the MCP SDK (node_modules), Node itself, or V8. */
  group: 'pqc-mcp' | 'dependency' | 'node' | 'v8' | 'bench';
  selfMs: number;
  /** Of the busy time (all samples but `(idle)`). */
  share: number;
}

/** The summary of one profile. */
export interface ProfileSummary {
  /** Milliseconds the thread was profiled, and busy (not idle). */
  totalMs: number;
  busyMs: number;
  /** Busy time per group. */
  groups: Record<ProfileItem['group'], number>;
  top: ProfileItem[];
}

/** Where a script URL lives, shortened for the table. */
function place(url: string): { file: string; group: ProfileItem['group'] } {
  if (url === '') return { file: '', group: 'v8' };
  if (url.startsWith('node:')) return { file: url, group: 'node' };
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length);
    return { file: rest.replace(/^\.pnpm\/[^/]+\/node_modules\//, ''), group: 'dependency' };
  }
  const pk = path.indexOf('/packages/');
  if (pk >= 0) return { file: path.slice(pk + 1), group: 'pqc-mcp' };
  const b = path.lastIndexOf('/bench/');
  if (b >= 0) return { file: path.slice(b + 1), group: 'bench' };
  const ex = path.lastIndexOf('/examples/');
  if (ex >= 0) return { file: path.slice(ex + 1), group: 'bench' };
  return { file: path, group: 'node' };
}

/** Self time per function of the profile in `file`, the `top` largest first. */
export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    // The delta before sample i+1 is the time spent in sample i.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const items = new Map<string, { group: ProfileItem['group']; us: number }>();
  const groups: Record<ProfileItem['group'], number> = { 'pqc-mcp': 0, dependency: 0, node: 0, v8: 0, bench: 0 };
  let busyUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') continue;
    busyUs += us;
    const { file: where, group } = place(frame.url);
    const name = frame.functionName || '(anonymous)';
    const key = where ? `${name} (${where}:${frame.lineNumber + 1})` : name;
    const entry = items.get(key) ?? { group, us: 0 };
    entry.us += us;
    items.set(key, entry);
    groups[group] += us;
  }
  const sorted = [...items.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, top);
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    totalMs: ms(totalUs),
    busyMs: ms(busyUs),
    groups: Object.fromEntries(Object.entries(groups).map(([g, us]) => [g, ms(us)])) as Record<ProfileItem['group'], number>,
    top: sorted.map(([item, e]) => ({ item, group: e.group, selfMs: ms(e.us), share: Math.round((e.us / Math.max(1, busyUs)) * 1000) / 1000 })),
  };
}
