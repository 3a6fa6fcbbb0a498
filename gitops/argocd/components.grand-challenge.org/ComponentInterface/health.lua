-- Argo CD health of a ComponentInterface (components.grand-challenge.org/v1alpha1).
-- The operator checks every interface rule and reports the result as the Ready condition:
--   Ready=True -> Healthy, Ready=False -> Degraded (the message names the first failing rule),
--   anything else (not checked yet, or checked for an older generation) -> Progressing.
local hs = {status = "Progressing", message = "Waiting for the operator to check the interface"}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to check generation " .. tostring(generation)
  return hs
end
local ready = condition(status, "Ready")
if ready == nil then
  return hs
end
local message = status.message or ready.message
if message == nil or message == "" then
  message = ready.reason or ("Ready is " .. tostring(ready.status))
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
end
hs.message = message
return hs
