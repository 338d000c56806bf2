-- Argo CD health of a FederationPeer (one bilateral federation link).
--
-- Argo CD calls this with the live object as `obj` and shows the returned status and message.
-- Written for Lua 5.1 (Argo CD runs gopher-lua) with the base library only: no os, no io.
-- The rules, in order, and why (docs/gitops.md has the table):
--   spec.suspend                  -> Suspended   the user paused the link on purpose
--   no status yet                 -> Progressing the operator has not seen the peer yet
--   status older than the spec    -> Progressing kstatus' rule: an old status says nothing of the new spec
--   Reconciling True              -> Progressing the link is not yet judged under the current spec
--   CredentialsReady False        -> Degraded    a referenced Secret is missing or wrong: user action
--   PinsUsable False              -> Degraded    a pin the edge cannot enforce: user action
--   Reachable, Slow               -> Healthy     the last ping was answered
--   Degraded, never succeeded     -> Progressing a new link gets the state table's 5 minutes to come up
--   Degraded (once worked), Unreachable -> Degraded
--   Unknown                       -> Progressing no ping has finished yet
local hs = {}

local function find(conditions, wanted)
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function says(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no pings are sent and the remote's calls are refused"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local conditions = status.conditions

local credentials = find(conditions, "CredentialsReady")
local observed = status.observedGeneration
if observed == nil and credentials ~= nil then
  observed = credentials.observedGeneration
end
local generation = obj.metadata.generation
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. generation
  return hs
end

local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = "Reconciling: " .. says(reconciling, "the operator is acting on the current spec")
  return hs
end

if credentials == nil or credentials.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to set up the credentials"
  return hs
end
if credentials.status == "False" then
  hs.status = "Degraded"
  hs.message = "Credentials not ready (" .. tostring(credentials.reason) .. "): " .. says(credentials, "")
  return hs
end

local pins = find(conditions, "PinsUsable")
if pins ~= nil and pins.status == "False" then
  hs.status = "Degraded"
  hs.message = "Pins not usable (" .. tostring(pins.reason) .. "): " .. says(pins, "")
  return hs
end

local reachable = find(conditions, "Reachable")
local state = status.reachability
if state == "Reachable" or state == "Slow" then
  hs.status = "Healthy"
  hs.message = state .. ": " .. says(reachable, "ping answered")
  return hs
end

local failure = "the last ping failed"
if reachable ~= nil and reachable.status == "False" then
  failure = tostring(reachable.reason) .. ": " .. says(reachable, "")
end
if state == "Degraded" and status.lastSuccessTime == nil then
  hs.status = "Progressing"
  hs.message = "No ping has succeeded yet (Unreachable 5 minutes after the first ping); " .. failure
  return hs
end
if state == "Degraded" or state == "Unreachable" then
  hs.status = "Degraded"
  hs.message = state .. ", " .. failure
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for a ping to finish: " .. says(reachable, "no ping has finished yet")
return hs
