/**
 * The Lua scripts of the store on a Redis Cluster: each touches the keys of ONE hash slot (a cluster refuses any
 * other, CROSSSLOT), so what the single-Redis scripts do in one step is split by slot (README: "Redis Cluster"):
 *
 * - a session's keys (`<prefix>{<id>}:s|n|t`): `C_CREATE`, `C_END`, `C_NONCE`, as on a single Redis;
 * - a client's index (`<prefix>{c:<sha256 of the DID>}:z|e`): its live sessions, for `maxSessionsPerClient`
 *   (`C_CLIENT`, `C_LEAVE`);
 * - an index shard (`<prefix>{i:<n>}:live|exp|ret|kept`): the live sessions of that shard by last use and by expiry,
 *   and the records of ended or expired ones kept, for `maxSessions` and `maxEndedSessions` split across the shards
 *   (`C_INDEX`, `C_RETIRE`).
 *
 * The bounds are decided atomically on the index slots (one script each); the session's own record follows in a
 * separate command on its slot. Times are integer epoch milliseconds, as in scripts.ts.
 */
import { NONCE_RULE, TIME_FUNCTIONS, script } from './scripts.js';

/**
 * Writes a new session's record (KEYS: its hash, nonce ZSET, nonce hash).
 * ARGV: now, record JSON, the client's DID, expiresAt, retention (ms), endedAt ('' unless ended), index shard.
 * Returns -1 when a session with this id exists already, else 1.
 */
export const C_CREATE = script(`${TIME_FUNCTIONS}
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local now, exp, ret, ended_at = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'peer', ARGV[3], 'exp', ARGV[4], 'ret', ARGV[5], 'seq', 0, 'shard', ARGV[7])
if ended_at then redis.call('HSET', KEYS[1], 'ended', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ttl_until(retained_until(exp, ended_at, ret), now))
return 1
`);

/**
 * A client's session cap (KEYS: the client's ZSET session id -> createdAt, its HASH session id -> expiresAt).
 * ARGV: now, the new session id, its createdAt, its expiresAt, maxSessionsPerClient, '1' if the new session is live.
 * Drops what has expired; while the client has maxSessionsPerClient sessions, takes its oldest (by createdAt) out;
 * adds the new one if live. Returns the ids taken out: the store ends them (`C_END`) and retires them (`C_RETIRE`).
 */
export const C_CLIENT = script(`${TIME_FUNCTIONS}
local now = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local e = tonumber(redis.call('HGET', KEYS[2], id))
  if not e or e <= now then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
local out = {}
local max = tonumber(ARGV[5])
while redis.call('ZCARD', KEYS[1]) >= max do
  local id = redis.call('ZPOPMIN', KEYS[1])[1]
  if not id then break end
  redis.call('HDEL', KEYS[2], id)
  out[#out + 1] = id
end
if ARGV[6] == '1' then
  local exp = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  reach(KEYS[1], exp, now)
  reach(KEYS[2], exp, now)
end
return out
`);

/** A session leaves its client's index (KEYS: the client's ZSET and HASH; ARGV: the session id). */
export const C_LEAVE = script(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`);

/** Shared by the index scripts: KEYS live (id -> last used), exp (id -> expiresAt), ret (id -> retention), kept. */
const INDEX_FUNCTIONS = `${TIME_FUNCTIONS}
-- Takes a live session out of the shard's live sets; returns its expiresAt and retention.
local function take(id)
  local e = tonumber(redis.call('ZSCORE', KEYS[2], id))
  local r = tonumber(redis.call('HGET', KEYS[3], id))
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  return e, r
end

-- A record kept until t joins the kept set (ended or expired sessions), bounded per shard.
local function keep(id, t, now)
  if t <= now then return end
  redis.call('ZADD', KEYS[4], t, id)
  reach(KEYS[4], t, now)
end
`;

/**
 * The global bounds on one index shard (KEYS: live, exp, ret, kept of the shard of the new session).
 * ARGV: now, the new session id, its expiresAt, retention (ms), the shard's share of maxSessions, the shard's share of
 * maxEndedSessions, endedAt ('' unless the new record is ended).
 * 1. Expired sessions leave the live sets for the kept set.
 * 2. While the shard holds its share of maxSessions, its least recently used session is taken out (into kept).
 * 3. The new session joins the live sets if live, else the kept set.
 * 4. Past its share of maxEndedSessions, the kept records that would be forgotten first are taken out of kept.
 * Returns { ids taken out by 2 (the store ends them), ids taken out by 4 (the store deletes their keys) }.
 */
export const C_INDEX = script(`${INDEX_FUNCTIONS}
local now, sid = tonumber(ARGV[1]), ARGV[2]
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do
  local e, r = take(id)
  if e and r then keep(id, retained_until(e, nil, r), now) end
end

local ended = {}
local cap = tonumber(ARGV[5])
while redis.call('ZCARD', KEYS[1]) >= cap do
  local id = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not id then break end
  local e, r = take(id)
  if e and r then keep(id, retained_until(e, now, r), now) end
  ended[#ended + 1] = id
end

local exp, ret, ended_at = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
if exp > now and not ended_at then
  redis.call('ZADD', KEYS[1], now, sid)
  redis.call('ZADD', KEYS[2], exp, sid)
  redis.call('HSET', KEYS[3], sid, ret)
  for k = 1, 3 do reach(KEYS[k], exp, now) end
else
  keep(sid, retained_until(exp, ended_at, ret), now)
end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local forgotten = {}
local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, excess - 1)) do
    redis.call('ZREM', KEYS[4], id)
    forgotten[#forgotten + 1] = id
  end
end
return { ended, forgotten }
`);

/**
 * A session ended elsewhere leaves its shard's live sets and is kept until t (KEYS: live, exp, ret, kept of its
 * shard; ARGV: now, session id, t).
 */
export const C_RETIRE = script(`${INDEX_FUNCTIONS}
local now = tonumber(ARGV[1])
take(ARGV[2])
keep(ARGV[2], tonumber(ARGV[3]), now)
return 1
`);

/**
 * Ends a session on its own slot (KEYS: its hash, nonce ZSET, nonce hash; ARGV: now, the least retention (ms)).
 * As `end_session` of scripts.ts: `ended` set, keys re-timed to its retention. Returns { 1, client DID, shard, kept
 * until } when it ended it (the store then takes it out of its client's index and its shard), { 0 } when there was
 * nothing to end (unknown, forgotten, or ended already).
 */
export const C_END = script(`${TIME_FUNCTIONS}
local now, min_ret = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'exp', 'ret', 'ended', 'peer', 'shard')
local exp, ret = tonumber(f[1]), tonumber(f[2])
if not exp or not ret or f[3] then return { 0 } end
if retained_until(exp, nil, ret) <= now then return { 0 } end
if min_ret > ret then ret = min_ret end
redis.call('HSET', KEYS[1], 'ended', now, 'ret', ret)
local until_t = retained_until(exp, now, ret)
local ttl = ttl_until(until_t, now)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return { 1, f[4] or '', f[5] or '', until_t }
`);

/**
 * Step 7 of docs/PROTOCOL.md §3 on the session's slot alone (KEYS: its hash, nonce ZSET, nonce hash; ARGV: now,
 * session id, nonce, signed timestamp (ms), ttl (ms), per-session cap): the rule of `RECORD_NONCE`, without the global
 * `live` set. Returns the outcome; 'accepted' comes with the session's index shard ({ 'accepted', shard }), where the
 * store then refreshes its "last used" (`ZADD … XX`).
 */
export const C_NONCE = script(`${TIME_FUNCTIONS}${NONCE_RULE}if ended_at then return 'ended' end
if exp <= now then return 'expired' end
return { 'accepted', redis.call('HGET', KEYS[1], 'shard') or '' }
`);
