-- The twin of policy.py (same names, same sums), spliced into gate.lua where it says so:
-- one script, one round trip. It reads `p` (the params) and `now`, which gate.lua sets first.
local EXIT_SHARE, BASELINE_PERCENTILE = 2 / 3, 0.1
local SLOT_POLL_S, BOOK_SPAN_S, REGAIN_UNIT_S, WALL_PCT = 0.05, 1.0, 60, 100
local CALM_INTERVALS, CALM_MAX_INTERVALS = 16, 120
local FIRST_ANSWER_S = 0.25

local function token_wait_s(next_free_s)
  return math.max(0, next_free_s - now)
end
local function take_token(next_free_s, rate)
  return math.max(next_free_s, now) + 1 / rate
end
local function appointment_s(booked_until_s, earliest_s)
  if earliest_s <= booked_until_s and booked_until_s <= earliest_s + BOOK_SPAN_S then
    return booked_until_s
  end
  return earliest_s
end
local function budget_room(usage, per_call, inflight)
  if per_call <= 0 then per_call = usage / math.max(1, inflight) end
  return usage + per_call * (inflight + 1) <= p.usage_target_pct
end
local function per_call_pct(known, rise)
  if rise <= 0 then return known end
  if known <= 0 then return rise end
  return math.min(known, rise)
end
local function at_wall(usage, per_call)
  local wall = WALL_PCT
  if per_call > 0 and per_call <= WALL_PCT - p.usage_target_pct then wall = p.usage_target_pct end
  return usage + per_call > wall or usage >= wall
end
local function stale_s(pace_s)
  if pace_s > 0 then return 2 * pace_s end
  return p.adapt_interval_s
end
local function found_on_time(wall_probe_s, cool_until_s, pace_s)
  local slack_s = (cool_until_s - wall_probe_s) + p.adapt_interval_s + stale_s(pace_s)
  return now - cool_until_s <= slack_s
end
local function cooldown_s(regain_s, strikes, base_s)
  if not base_s or base_s == 0 then base_s = p.cooldown_base_s end
  local wait_s = base_s * 2 ^ (strikes - 1)
  if regain_s > 0 then wait_s = math.min(math.max(wait_s, regain_s - REGAIN_UNIT_S), regain_s) end
  return math.min(wait_s, p.cooldown_max_s)
end
local function baseline_s(samples)
  table.sort(samples)
  return samples[math.floor((#samples - 1) * BASELINE_PERCENTILE) + 1]
end
local function pace_limit(rate, pace_s, oldest_age_s)
  if pace_s > 0 then return math.max(p.inflight_floor, math.ceil(rate * pace_s)) end
  return math.max(p.inflight_start, math.ceil(rate * (oldest_age_s - FIRST_ANSWER_S)))
end
local function paired(admitted_s, paired_at_s)
  return paired_at_s > 0 and admitted_s > 0 and admitted_s >= paired_at_s - 0.5 / p.rate_per_s
end
local NORMAL, RAISED, STRAINED = 0, 1, 2
local function latency_level(samples, average_s, calls)  -- nil: too little evidence
  if p.latency_factor <= 0 then return NORMAL end
  if calls < p.interval_min_samples or #samples < p.latency_min_samples then return nil end
  local threshold_s = p.latency_factor * baseline_s(samples)
  if average_s >= threshold_s then return STRAINED end
  if average_s >= EXIT_SHARE * threshold_s then return RAISED end
  return NORMAL
end
local function next_limit(limit, level, calm_intervals, calm_needed, blocked, paced_share)
  if level == STRAINED then
    return math.max(p.inflight_floor, math.floor(limit * paced_share))
  end
  if blocked and level == NORMAL and calm_intervals >= calm_needed then
    local step = 1
    if calm_needed == 1 then step = limit end
    return math.min(p.inflight_ceiling, limit + step)
  end
  return limit
end
local function next_calm_needed(calm_needed, level)
  if level == STRAINED then
    return math.min(CALM_MAX_INTERVALS, math.max(CALM_INTERVALS, 2 * calm_needed))
  end
  if level == NORMAL then return math.max(1, math.floor(calm_needed / 2)) end
  return calm_needed
end
