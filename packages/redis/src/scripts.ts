/**
 * The Lua scripts that make each store operation atomic on the Redis server. Every script runs whole or not at all,
 * so server instances racing on the same session, nonce or session slot see one order.
 *
 * Numbers: times are epoch milliseconds. What a script writes back is either a string it was given (a signed
 * timestamp, expiresAt) or an integer it computed from integers (now, a retention, a nonce's expiry), because Redis turns a Lua number into text with
 * 14 significant digits: fractional milliseconds would lose digits, integers below 10^14 do not.
 *
 * These are the scripts of a single Redis (or a primary with replicas, Sentinel): `CREATE_SESSION`, `END_SESSION` and
 * `RECORD_NONCE` touch the global `live`, `expiry` and `retained` sets and client sets beside a session's keys,
 * which a Redis Cluster refuses (CROSSSLOT). On a cluster the store runs cluster-scripts.ts instead, each on one slot.
 */
import { createHash } from 'node:crypto';

/** A script with its SHA1 (for EVALSHA). */
export interface LuaScript {
  readonly source: string;
  readonly sha1: string;
}

/** A script from its source. */
export function script(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * Shared by the scripts. A session is a hash (`record`: the JSON of `serializeSessionRecord`, written once;
 * `peer`: the client's DID; `exp`: expiresAt; `ret`: the retention, ms; `ended`: endedAt, once ended; `floor`: the
 * nonce floor; `seq`: the nonce arrival counter) beside its nonce ZSET (nonce -> arrival number) and nonce hash (nonce
 * -> "<signed time> <expiry>"). The three keys expire together, when the record may be forgotten (`recordRetainedUntil`
 * of core). A live session is in the global `live` and `expiry` sets and in its client's set; once ended or expired it
 * leaves them for the `retained` set (session id -> when its record may be forgotten), which bounds how many such
 * records are kept.
 */
/** The time helpers every script shares (retention, TTLs); the cluster scripts use them too. */
export const TIME_FUNCTIONS = `
local function retained_until(exp, ended, ret)
  local e = ended or exp
  if e > exp then e = exp end
  local u = e + ret
  if u < exp then u = exp end
  return u
end

local function ttl_until(t, now)
  local ttl = math.ceil(t - now)
  if ttl < 1 then ttl = 1 end
  return ttl
end

-- Extends a global set's TTL to reach time t.
local function reach(key, t, now)
  local want = ttl_until(t, now)
  if redis.call('PTTL', key) < want then redis.call('PEXPIRE', key, want) end
end
`;

const COMMON = `${TIME_FUNCTIONS}
-- A session leaves its client's set (the set goes with its last member).
local function leave_client(prefix, peer, sid)
  if not peer then return end
  local c = prefix .. 'c:' .. peer
  redis.call('ZREM', c, sid)
  if redis.call('ZCARD', c) == 0 then redis.call('DEL', c) end
end

-- A record no longer live is kept until t: it joins the retained set, which the bound on such records reads.
local function retain(retained, sid, t, now)
  redis.call('ZADD', retained, t, sid)
  reach(retained, t, now)
end

-- Marks a live or expired session ended (keys s, n, t of one session) and re-times its keys: its record and nonces
-- are kept until its expiry and at least the retention after it ended. Always drops it from the live sets.
-- False when there is nothing to end: no record, already ended, or past its retention.
local function end_session(s, n, t, live, expiry, retained, prefix, sid, now, min_ret)
  redis.call('ZREM', live, sid)
  redis.call('ZREM', expiry, sid)
  local f = redis.call('HMGET', s, 'exp', 'ret', 'ended', 'peer')
  local exp, ret = tonumber(f[1]), tonumber(f[2])
  if not exp or not ret or f[3] then return false end
  if retained_until(exp, nil, ret) <= now then return false end
  leave_client(prefix, f[4], sid)
  if min_ret > ret then ret = min_ret end
  redis.call('HSET', s, 'ended', now, 'ret', ret)
  local until_t = retained_until(exp, now, ret)
  local ttl = ttl_until(until_t, now)
  redis.call('PEXPIRE', s, ttl)
  redis.call('PEXPIRE', n, ttl)
  redis.call('PEXPIRE', t, ttl)
  retain(retained, sid, until_t, now)
  return true
end
`;

/**
 * Opens a session, first ending what the limits require (docs/PROTOCOL.md §9), never refusing.
 * KEYS: live ZSET (session id -> last used), expiry ZSET (session id -> expiresAt), the client's ZSET (session id ->
 *       createdAt), the new session's hash, nonce ZSET and nonce hash, the retained ZSET (session id -> when its
 *       record may be forgotten).
 * ARGV: key prefix, now, session id, record JSON, expiresAt, createdAt, retention (ms), maxSessions,
 *       maxSessionsPerClient, endedAt ('' unless the record is ended already), maxEndedSessions, the client's DID.
 * Returns -1 when a session with this id exists already, else the ids of the sessions it ended.
 *
 * 1. Expired sessions leave the live sets and their client's set for the retained set (their records stay for the
 *    retention).
 * 2. The client's set is pruned of what is no longer live; while the client has `maxSessionsPerClient` live
 *    sessions its oldest (by createdAt) is ended.
 * 3. While the store has `maxSessions` live sessions the least recently used (lowest `live` score) is ended.
 * 4. The record is written, with a TTL at its retention; if live, it joins the three sets, whose TTLs reach the
 *    latest expiry of their members; if not, the retained set.
 * 5. Past `maxEndedSessions` records of ended or expired sessions, those that would be forgotten first are forgotten
 *    now (their sessions become unknown: nothing of theirs is accepted, their clients handshake anew).
 */
export const CREATE_SESSION = script(`${COMMON}
local prefix, now, sid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local function keys_of(id)
  local base = prefix .. '{' .. id .. '}:'
  return base .. 's', base .. 'n', base .. 't'
end
local function end_other(id)
  local s, n, t = keys_of(id)
  return end_session(s, n, t, KEYS[1], KEYS[2], KEYS[7], prefix, id, now, 0)
end
local ended = {}

local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', (keys_of(id)), 'exp', 'ret', 'ended', 'peer')
  local exp, ret = tonumber(f[1]), tonumber(f[2])
  leave_client(prefix, f[4], id)
  if exp and ret and not f[3] and retained_until(exp, nil, ret) > now then retain(KEYS[7], id, retained_until(exp, nil, ret), now) end
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end

local mine = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('ZSCORE', KEYS[2], id) then mine[#mine + 1] = id else redis.call('ZREM', KEYS[3], id) end
end
local max_client = tonumber(ARGV[9])
local i = 1
while #mine - i + 1 >= max_client and i <= #mine do
  local id = mine[i]
  redis.call('ZREM', KEYS[3], id)
  if end_other(id) then ended[#ended + 1] = id end
  i = i + 1
end

local max_sessions = tonumber(ARGV[8])
while redis.call('ZCARD', KEYS[1]) >= max_sessions do
  local id = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not id then break end
  if end_other(id) then ended[#ended + 1] = id end
end

local exp, ret = tonumber(ARGV[5]), tonumber(ARGV[7])
local ended_at = tonumber(ARGV[10])
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('HSET', KEYS[4], 'record', ARGV[4], 'peer', ARGV[12], 'exp', ARGV[5], 'ret', ARGV[7], 'seq', 0)
if ended_at then redis.call('HSET', KEYS[4], 'ended', ARGV[10]) end
local until_t = retained_until(exp, ended_at, ret)
redis.call('PEXPIRE', KEYS[4], ttl_until(until_t, now))
if exp > now and not ended_at then
  redis.call('ZADD', KEYS[1], now, sid)
  redis.call('ZADD', KEYS[2], ARGV[5], sid)
  redis.call('ZADD', KEYS[3], ARGV[6], sid)
  for k = 1, 3 do reach(KEYS[k], exp, now) end
else
  retain(KEYS[7], sid, until_t, now)
end

redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
local excess = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[11])
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[7], 0, excess - 1)) do
    redis.call('DEL', keys_of(id))
    redis.call('ZREM', KEYS[7], id)
  end
end
return ended
`);

/**
 * Ends a session its client asked to end.
 * KEYS: the session's hash, nonce ZSET and nonce hash; live ZSET, expiry ZSET, retained ZSET.
 * ARGV: now, session id, retention (ms): the record is kept at least that long after now; the key prefix (for the
 *       client's set, named by the DID in the session's hash).
 * Returns 1 when it ended the session, 0 when there was nothing to end (unknown, forgotten, or ended already).
 * The bound on retained records is applied by the next `CREATE_SESSION` (every session ended here was opened by one).
 */
export const END_SESSION = script(`${COMMON}
if end_session(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[4], ARGV[2], tonumber(ARGV[1]), tonumber(ARGV[3])) then return 1 end
return 0
`);

/**
 * Ends every live session of one client (its trust was withdrawn).
 * KEYS: the client's ZSET; live ZSET, expiry ZSET, retained ZSET.
 * ARGV: now, retention (ms), the key prefix.
 * Returns the ids of the sessions it ended. Like `CREATE_SESSION`, it builds the keys of the sessions it ends from the
 * prefix (undeclared: cross-slot, see above).
 */
export const END_PEER_SESSIONS = script(`${COMMON}
local now, min_ret, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local ended = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local exp = tonumber(redis.call('ZSCORE', KEYS[3], id))
  local base = prefix .. '{' .. id .. '}:'
  if exp and exp > now then
    if end_session(base .. 's', base .. 'n', base .. 't', KEYS[2], KEYS[3], KEYS[4], prefix, id, now, min_ret) then ended[#ended + 1] = id end
  end
end
return ended
`);

/**
 * Step 7 of docs/PROTOCOL.md §3 in one script: the nonce check and record, and the session's liveness.
 * KEYS: the session's hash, nonce ZSET (nonce -> arrival number) and nonce hash (nonce -> "<signed time> <expiry>");
 *       the live ZSET (session id -> last used).
 * ARGV: now, session id, nonce, signed timestamp (ms), ttl (ms), per-session cap.
 * Returns 'accepted', 'replay', 'ended', 'expired' or 'unknown' (the `NonceOutcome` of core).
 *
 * The nonce rule is `NonceWindow` of core (nonce-window.ts): when the window is full, expired nonces are swept from
 * the oldest arrival on (stopping at the first live one); a nonce seen and not expired is a replay, and so is a
 * timestamp not newer than the floor; then while the window is full the oldest arrival is dropped and the floor
 * rises to its signed time, so a dropped nonce can never be accepted again. A new nonce is recorded whether the
 * session is live, ended or expired (a signed rejection is given once per nonce). An accepted one refreshes the
 * session's "last used" in the live set, which the global limit's LRU reads.
 */
/**
 * The nonce rule of `RECORD_NONCE` up to the answer, shared with the cluster's script (cluster-scripts.ts): it returns
 * early with 'unknown' or 'replay', else falls through with the nonce recorded, `ended_at` and `exp` read.
 */
export const NONCE_RULE = `
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'exp', 'ret', 'ended', 'floor')
if not f[1] then return 'unknown' end
local exp, ret, ended_at = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if not exp or not ret or (f[3] and not ended_at) then return redis.error_reply('corrupt session record') end
if retained_until(exp, ended_at, ret) <= now then return 'unknown' end

local nonce, ts, ttl, max = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function parts(v)
  local sp = string.find(v, ' ', 1, true)
  if not sp then return nil, nil end
  return string.sub(v, 1, sp - 1), tonumber(string.sub(v, sp + 1))
end

if redis.call('ZCARD', KEYS[2]) >= max then
  while true do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not oldest then break end
    local v = redis.call('HGET', KEYS[3], oldest)
    if v then
      local _, e = parts(v)
      if e and e > now then break end
    end
    redis.call('ZREM', KEYS[2], oldest)
    redis.call('HDEL', KEYS[3], oldest)
  end
end

local seen = redis.call('HGET', KEYS[3], nonce)
if seen then
  local _, e = parts(seen)
  if not e or e > now then return 'replay' end
end
local floor = f[4]
if floor and ts <= tonumber(floor) then return 'replay' end

local raised = false
while redis.call('ZCARD', KEYS[2]) >= max do
  local oldest = redis.call('ZPOPMIN', KEYS[2])[1]
  local v = redis.call('HGET', KEYS[3], oldest)
  redis.call('HDEL', KEYS[3], oldest)
  local t0 = v and parts(v)
  if t0 and tonumber(t0) and (not floor or tonumber(t0) > tonumber(floor)) then
    floor = t0
    raised = true
  end
end
redis.call('ZADD', KEYS[2], redis.call('HINCRBY', KEYS[1], 'seq', 1), nonce)
redis.call('HSET', KEYS[3], nonce, ARGV[4] .. ' ' .. (now + ttl))
if raised then redis.call('HSET', KEYS[1], 'floor', floor) end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('PEXPIRE', KEYS[2], pttl)
  redis.call('PEXPIRE', KEYS[3], pttl)
end

`;

export const RECORD_NONCE = script(`${COMMON}${NONCE_RULE}if ended_at then return 'ended' end
if exp <= now then return 'expired' end
redis.call('ZADD', KEYS[4], 'XX', now, ARGV[2])
return 'accepted'
`);

/**
 * Claims an MCP session for a client DID (§9).
 * KEYS: the owner key. ARGV: the DID, ttl (ms).
 * Returns 1 (claimed or already this DID's: its ownership is extended), 0 (another DID owns it).
 */
export const CLAIM_MCP_SESSION = script(`
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);
