-- One ad account's throttle machine, atomically for the whole fleet: the twin of machine.py, and
-- with policy.lua of policy.py (same names, same sums; tests/unit/test_throttle_lua.py checks
-- they agree).
-- KEYS: state hash, latency list (newest first), leases zset (lease id -> expiry time).
-- ARGV: op ("acquire" | "settle" | "peek"), now ("" = Redis's clock, one for every host),
--       params (JSON), lease id, state ttl_s, then per op:
--       acquire: max_wait_s, lease_ttl_s,       settle: outcome, latency_s ("" = none),
--                past_load_limit ("1": yes)            usage_pct, regain_s, lease_ttl_s
-- Answers: acquire {go, wait_s, reason}; settle {cool_wait_s, episode_s, limit, events...};
-- peek {limit, cool_wait_s, soft, inflight, pace_s, usage_pct, per_call_pct}. Numbers come
-- back as strings: Redis would truncate a Lua number to an integer.
local state_key, latency_key, leases_key = KEYS[1], KEYS[2], KEYS[3]
local op, p, lease, ttl_s = ARGV[1], cjson.decode(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local FIELDS = {'next_free_s', 'limit', 'interval_at_s', 'cool_until_s', 'strikes', 'walls',
  'wall_since_s', 'wall_s', 'wall_probe_s', 'throttled_since_s', 'soft', 'calm_intervals', 'calm_needed', 'probing', 'pace_s',
  'answer_at_s', 'resumed_at_s',
  'usage_last', 'usage_at_s', 'per_call_pct', 'booked_until_s', 'latency_sum_s',
  'latency_calls', 'slots_blocked', 'inflight_max', 'load_judged', 'paired_at_s'}

-- policy.lua (gate.py splices it in here)

-- machine.py
local s = {next_free_s = now, limit = p.inflight_ceiling, interval_at_s = now,
  calm_needed = 1}  -- new_state; the others start at 0
for _, name in ipairs(FIELDS) do s[name] = s[name] or 0 end
local stored = redis.call('HGETALL', state_key)
for i = 1, #stored, 2 do s[stored[i]] = tonumber(stored[i + 1]) end

local function latency_samples()
  local samples = {}
  for i, v in ipairs(redis.call('LRANGE', latency_key, 0, -1)) do samples[i] = tonumber(v) end
  return samples
end

local function new_pace()  -- the baseline afresh; the load limit and the pair's verdict go
  redis.call('DEL', latency_key)
  s.pace_s, s.limit = 0, p.inflight_ceiling
  s.calm_intervals, s.calm_needed, s.probing = 0, 1, 0
  s.load_judged, s.paired_at_s = 0, 0
end

local function inflight_limit(oldest_age_s)
  local need = pace_limit(p.rate_per_s, s.pace_s, oldest_age_s)
  if s.resumed_at_s > 0 then  -- the pace in doubt until an answer: a new account's start
    need = math.max(need, pace_limit(p.rate_per_s, 0, oldest_age_s))
  end
  if s.paired_at_s > 0 and s.load_judged == 0 and s.pace_s > 0 and p.latency_factor > 0 then
    need = p.inflight_floor
  end
  return math.max(p.inflight_floor, math.min(s.limit, p.inflight_ceiling, need))
end

local function strained_start(events)  -- the first pair strained: as a probe that strained
  s.limit, s.calm_intervals, s.probing = p.inflight_floor, 0, 0
  s.calm_needed = next_calm_needed(s.calm_needed, STRAINED)
  if s.soft == 0 then
    s.soft = 1
    table.insert(events, 'soft_started')
  end
end

local function note_usage(usage_pct)
  if usage_pct >= s.usage_last or now - s.usage_at_s >= p.adapt_interval_s then
    s.per_call_pct = per_call_pct(s.per_call_pct, usage_pct - s.usage_last)
    s.usage_last, s.usage_at_s = usage_pct, now
  end
end

local function close_interval(events)
  local average_s = 0
  if s.latency_calls > 0 then average_s = s.latency_sum_s / s.latency_calls end
  local level = latency_level(latency_samples(), average_s, s.latency_calls)
  if level == STRAINED and s.inflight_max > 0 and s.inflight_max <= p.inflight_floor then
    new_pace()  -- strained with one call at a time: not our load
    level = NORMAL
  end
  local soft = s.soft == 1
  if level ~= nil then soft = level == STRAINED or (soft and level == RAISED) end
  if soft ~= (s.soft == 1) then
    if soft then table.insert(events, 'soft_started') else table.insert(events, 'soft_ended') end
    s.soft = soft and 1 or 0
  end
  if level == NORMAL then
    s.calm_intervals = s.calm_intervals + 1
  elseif level ~= nil then
    s.calm_intervals = 0
  end
  if s.probing == 1 and level ~= nil then
    s.calm_needed, s.probing = next_calm_needed(s.calm_needed, level), 0
  end
  local limit = s.limit
  if level == STRAINED then limit = math.min(s.limit, math.max(s.inflight_max, p.inflight_floor)) end
  if level == STRAINED or s.limit < p.inflight_ceiling then
    local paced_share = 1
    if average_s > 0 then paced_share = s.pace_s / average_s end
    limit = next_limit(limit, level, s.calm_intervals, s.calm_needed, s.slots_blocked == 1,
      paced_share)
    if limit > s.limit then s.probing = 1 end
    s.limit = limit
  end
  s.interval_at_s = now
  s.latency_calls, s.slots_blocked, s.inflight_max, s.latency_sum_s = 0, 0, 0, 0
end

local function save()
  local flat = {}
  for _, name in ipairs(FIELDS) do
    table.insert(flat, name)
    table.insert(flat, s[name])
  end
  redis.call('HSET', state_key, unpack(flat))
  redis.call('EXPIRE', state_key, ttl_s)
end

local function fmt(x) return string.format('%.17g', x) end

if op == 'peek' then
  redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now)
  return {fmt(inflight_limit(0)), fmt(math.max(0, s.cool_until_s - now)), fmt(s.soft),
    fmt(redis.call('ZCARD', leases_key)), fmt(s.pace_s), fmt(s.usage_last), fmt(s.per_call_pct)}
end

if op == 'acquire' then
  local max_wait_s, lease_ttl_s = tonumber(ARGV[6]), tonumber(ARGV[7])
  local go, wait_s, reason = 0, 0, 'go'
  redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now)  -- leases of killed workers expire
  local inflight, oldest_age_s = redis.call('ZCARD', leases_key), 0
  if inflight > 0 then
    local oldest = redis.call('ZRANGE', leases_key, 0, 0, 'WITHSCORES')
    oldest_age_s = now - (tonumber(oldest[2]) - lease_ttl_s)
  end
  s.inflight_max = math.max(s.inflight_max, inflight)
  local fresh = inflight > 0 or (s.walls == 0 and now - s.usage_at_s < stale_s(s.pace_s))
  if now < s.cool_until_s then
    wait_s, reason = s.cool_until_s - now, 'cooldown'
  elseif inflight >= inflight_limit(oldest_age_s) and ARGV[8] ~= '1' then
    s.slots_blocked = 1
    wait_s, reason = SLOT_POLL_S, 'inflight'
  elseif fresh and not budget_room(s.usage_last, s.per_call_pct, inflight) then
    wait_s, reason = SLOT_POLL_S, 'budget'
  else
    wait_s = token_wait_s(s.next_free_s)
    if wait_s > max_wait_s then
      local appointment = appointment_s(s.booked_until_s, now + wait_s - max_wait_s)
      s.booked_until_s = appointment + 1 / p.rate_per_s
      wait_s, reason = appointment - now, 'rate'
    else
      s.next_free_s = take_token(s.next_free_s, p.rate_per_s)
      go = 1
      s.inflight_max = math.max(s.inflight_max, inflight + 1)
      if inflight == 0 and now - s.answer_at_s >= stale_s(s.pace_s) then
        s.resumed_at_s = now + wait_s
      end
      if inflight > 0 and s.load_judged == 0 and s.paired_at_s == 0 then
        s.paired_at_s = now + wait_s
      end
      redis.call('ZADD', leases_key, now + wait_s + lease_ttl_s, lease)
      redis.call('EXPIRE', leases_key, ttl_s)
    end
  end
  save()
  return {tostring(go), fmt(wait_s), reason}
end

-- settle
local outcome, latency_s = ARGV[6], tonumber(ARGV[7])
local usage_pct, regain_s = tonumber(ARGV[8]), tonumber(ARGV[9])
local admitted_s = tonumber(redis.call('ZSCORE', leases_key, lease) or 0)  -- 0: lapsed
if admitted_s > 0 then admitted_s = admitted_s - tonumber(ARGV[10]) end
redis.call('ZREM', leases_key, lease)
local events, episode_s = {}, 0
s.answer_at_s = now
if outcome == 'throttled' then
  if s.walls > 0 then s.wall_probe_s = now end
  if now >= s.cool_until_s or s.throttled_since_s == 0 then
    s.strikes = s.strikes + 1
    if s.throttled_since_s == 0 then
      s.throttled_since_s = now
      table.insert(events, 'throttle_started')
    end
  end
  s.cool_until_s = math.max(s.cool_until_s, now + cooldown_s(regain_s, s.strikes))
else
  if outcome == 'ok' then
    if s.throttled_since_s ~= 0 and now >= s.cool_until_s then
      table.insert(events, 'throttle_ended')
      episode_s = now - s.throttled_since_s
      s.throttled_since_s, s.strikes = 0, 0
    end
    note_usage(usage_pct)
    if latency_s then
      local pace_factor_s = p.latency_factor * s.pace_s
      if s.resumed_at_s > 0 and pace_factor_s > 0 and latency_s >= pace_factor_s then
        new_pace()  -- during the pause: this answer is its first sample
        s.paired_at_s = s.resumed_at_s  -- every call in flight went alongside this one
      elseif s.pace_s > 0 and s.load_judged == 0 and paired(admitted_s, s.paired_at_s) then
        s.load_judged = 1
        if pace_factor_s > 0 and latency_s >= pace_factor_s then strained_start(events) end
      end
      s.resumed_at_s = 0
      redis.call('LPUSH', latency_key, ARGV[7])
      redis.call('LTRIM', latency_key, 0, p.latency_window - 1)
      redis.call('EXPIRE', latency_key, ttl_s)
      s.pace_s = baseline_s(latency_samples())
      s.latency_sum_s = s.latency_sum_s + latency_s
      s.latency_calls = s.latency_calls + 1
    end
    if not at_wall(usage_pct, s.per_call_pct) then
      if s.walls > 0 then
        if s.wall_since_s > 0 and found_on_time(s.wall_probe_s, s.cool_until_s, s.pace_s) then
          s.wall_s = (s.wall_probe_s + now) / 2 - s.wall_since_s
        end
        s.walls, s.wall_since_s, s.wall_probe_s = 0, 0, 0
      end
    elseif now >= s.cool_until_s then
      local from_s = now  -- the next probe is due a doubled gap after this one was due
      if s.walls > 0 and found_on_time(s.wall_probe_s, s.cool_until_s, s.pace_s) then
        from_s = s.cool_until_s
      end
      s.walls, s.wall_probe_s = s.walls + 1, now
      local base_s = p.adapt_interval_s
      if s.walls == 1 then
        s.wall_since_s, base_s = now, math.max(base_s, s.wall_s)
      end
      s.cool_until_s = from_s + cooldown_s(regain_s, s.walls, base_s)
    end
  end
  if now - s.interval_at_s >= p.adapt_interval_s then close_interval(events) end
end
save()
local answer = {fmt(math.max(0, s.cool_until_s - now)), fmt(episode_s), fmt(inflight_limit(0))}
for _, event in ipairs(events) do table.insert(answer, event) end
return answer
