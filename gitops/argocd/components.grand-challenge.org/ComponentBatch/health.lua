-- Argo CD health of a ComponentBatch (components.grand-challenge.org/v1alpha1).
-- The operator reports the batch in four conditions (Failed, Complete, Suspended, Progressing),
-- its counts in status.counts and "settled/total" items in status.progress:
--   Failed=True       -> Degraded: more than maxFailures items failed (TooManyFailures), or the batch
--       cannot run at all (InvalidSpec, InvalidFilter, DatasetTooLarge, DatasetUnreadable, a Failed
--       or Cancelled image, InternalError); the message is the Failed condition's.
--   Complete=True     -> Healthy, with the Complete condition's message ("3 succeeded, 1 failed,
--       0 invalid, 2 existing, 0 deferred of 6"). Also when some items failed or were invalid
--       (counts.failed + counts.invalid > 0) within maxFailures: the batch did what it was asked
--       (every item ran once, or was skipped as existing) and reports the failed ones in
--       status.failedItems / status.invalidItems, as a Job whose pods failed fewer times than its
--       backoffLimit still completes. Each failed item's own ComponentJob is Degraded; set
--       maxFailures to make a batch with too many failures Degraded instead.
--   Suspended=True    -> Suspended (spec.suspend: planned and counted, no jobs started; resumable).
--   anything else     -> Progressing, with status.progress and the Progressing condition's message
--       (jobs running or pending, or waiting: ImageNotFound, ImageNotReady, WaitingForInterfaces).
-- No status yet, or a status (or condition) of an older generation, is Progressing.
local hs = {status = "Progressing", message = "Waiting for the operator"}

local status = obj.status
if status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to plan generation " .. tostring(generation)
  return hs
end

-- A condition of the current generation (one left over from an older spec is ignored).
local function condition(kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
        return nil
      end
      return c
    end
  end
  return nil
end

local function message_of(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or (c.type .. " is " .. tostring(c.status))
end

local function with_progress(message)
  if status.progress ~= nil and status.progress ~= "" then
    return status.progress .. ": " .. message
  end
  return message
end

local failed = condition("Failed")
if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(failed)
  return hs
end
local complete = condition("Complete")
if complete ~= nil and complete.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(complete)
  return hs
end
local suspended = condition("Suspended")
if suspended ~= nil and suspended.status == "True" then
  hs.status = "Suspended"
  hs.message = with_progress(message_of(suspended))
  return hs
end
local progressing = condition("Progressing")
if progressing ~= nil then
  hs.message = with_progress(message_of(progressing))
end
return hs
