-- Argo CD health of a ComponentJob (components.grand-challenge.org/v1alpha1).
-- status.phase carries grand-challenge's job states:
--   Succeeded                                    -> Healthy
--   Failed                                       -> Degraded
--   Cancelled                                    -> Degraded: the job ended without outputs and
--       never resumes. Invalid inputs and missing interfaces end Cancelled too (grand-challenge's
--       rule), so Cancelled is often a broken manifest in Git. Argo CD's Suspended means paused
--       and resumable, which a Cancelled job is not.
--   Validating inputs, Queued, Re-Queued, Provisioning, Provisioned, Executing, Executed,
--   Parsing outputs, or no status yet            -> Progressing
-- The message is status.errorMessage (grand-challenge's words) or the latest condition's message.
local hs = {status = "Progressing", message = "Waiting for the operator to validate the inputs"}

local function latest_condition(status)
  local found = nil
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if found == nil or (c.lastTransitionTime or "") >= (found.lastTransitionTime or "") then
      found = c
    end
  end
  return found
end

local function condition(status, kind)
  if status.conditions == nil then
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
if status == nil or status.phase == nil then
  return hs
end
local phase = status.phase
local message = status.errorMessage
if message == nil or message == "" then
  message = status.message
end
if message == nil or message == "" then
  local c = nil
  if phase == "Succeeded" then
    c = condition(status, "Succeeded")
  elseif phase == "Failed" or phase == "Cancelled" then
    c = condition(status, "Failed")
  end
  if c == nil then
    c = latest_condition(status)
  end
  if c ~= nil then
    message = c.message
    if message == nil or message == "" then
      message = c.reason
    end
  end
end
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Cancelled" then
  hs.status = "Degraded"
end
if message ~= nil and message ~= "" then
  hs.message = phase .. ": " .. message
else
  hs.message = phase
end
return hs
