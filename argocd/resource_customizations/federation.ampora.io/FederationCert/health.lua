-- Argo CD health of a FederationCert (a client identity of this site).
--
-- Argo CD calls this with the live object as `obj` and shows the returned status and message.
-- Written for Lua 5.1 (Argo CD runs gopher-lua) with the base library only: no os, no io.
-- The rules, in order (docs/gitops.md has the table):
--   no status yet                 -> Progressing the operator has not issued it yet
--   status older than the spec    -> Progressing kstatus' rule: an old status says nothing of the new spec
--   Ready Unknown (issuing)       -> Progressing
--   Ready False                   -> Degraded    expired, Secret missing, tampered or in conflict: user action
--   Ready True, Expiring True     -> Healthy     still valid; the message says to rotate (the alert does too)
--   Ready True                    -> Healthy
local hs = {}

local function find(conditions, wanted)
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to issue the certificate"
  return hs
end

local ready = find(status.conditions, "Ready")
local observed = status.observedGeneration
if observed == nil and ready ~= nil then
  observed = ready.observedGeneration
end
local generation = obj.metadata.generation
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. generation
  return hs
end

if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Issuing the key and certificate"
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message)
  return hs
end

local expiring = find(status.conditions, "Expiring")
hs.status = "Healthy"
if expiring ~= nil and expiring.status == "True" then
  hs.message = "Expiring: " .. tostring(expiring.message)
else
  hs.message = "Valid until " .. tostring(status.notAfter) .. ", thumbprint " .. tostring(status.thumbprint)
end
return hs
