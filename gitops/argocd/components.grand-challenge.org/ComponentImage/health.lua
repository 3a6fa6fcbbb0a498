-- Argo CD health of a ComponentImage (components.grand-challenge.org/v1alpha1).
-- status.importStatus carries grand-challenge's import states; the Ready condition says whether
-- jobs may use the image:
--   Completed with Ready=True                    -> Healthy
--   Failed, Cancelled                            -> Degraded (the image was refused: root user,
--                                                   no entrypoint, not found ...; status.message says why)
--   Initialized, Queued, Re-Queued, Started,
--   not inspected yet, or an older generation    -> Progressing (Re-Queued: the registry is
--                                                   unreachable and the operator retries with backoff)
local hs = {status = "Progressing", message = "Waiting for the operator to inspect the image"}

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
local ready = condition(status, "Ready")
local importStatus = status.importStatus or "Initialized"
local message = status.message
if (message == nil or message == "") and ready ~= nil then
  message = ready.message
end
if message == nil or message == "" then
  message = "Import status " .. importStatus
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to inspect generation " .. tostring(generation)
  return hs
end
if importStatus == "Failed" or importStatus == "Cancelled" then
  hs.status = "Degraded"
elseif importStatus == "Completed" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
end
hs.message = importStatus .. ": " .. message
return hs
