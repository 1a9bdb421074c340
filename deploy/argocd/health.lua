-- Argo CD health check for keyward.dev/v1alpha1 MfaProvider, Employee and AccessGrant.
--
-- Reads the condition contract of docs/gitops.md: Ready, plus the kstatus conditions
-- Reconciling and Stalled (abnormal-true), and status.observedGeneration. Argo CD runs it in
-- gopher-lua (Lua 5.1); tests/chart.rs runs it under lua5.1 and lua5.4 on the sample objects
-- of tests/chart/status-samples.yaml. Install it with deploy/argocd/argocd-cm.yaml.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if text ~= "" then
      text = text .. ": "
    end
    text = text .. c.message
  end
  if text == "" then
    return fallback
  end
  return text
end

local ready = condition("Ready")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
local generation = obj.metadata.generation
local observed = nil
if obj.status ~= nil then
  observed = obj.status.observedGeneration
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for keyward to reconcile this " .. obj.kind
elseif generation ~= nil and observed ~= nil and observed ~= generation then
  -- A status about an older spec says nothing about the current one.
  hs.status = "Progressing"
  hs.message = "keyward has not yet reconciled generation " .. tostring(generation)
    .. " (status is for generation " .. tostring(observed) .. ")"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled: keyward needs a change or an approval to go on")
elseif obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: keyward revokes the enrolments first"
  if reconciling ~= nil and reconciling.status == "True" then
    hs.message = describe(reconciling, hs.message)
  end
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "keyward is reconciling")
elseif ready == nil then
  hs.status = "Progressing"
  hs.message = "No Ready condition yet"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  local pending = condition("EnrolmentPending")
  if pending ~= nil and pending.status == "True" then
    hs.message = hs.message .. "; " .. describe(pending, "EnrolmentPending")
  end
  if obj.kind == "MfaProvider" and obj.spec ~= nil and obj.spec.policy ~= nil
      and obj.spec.policy.mode == "Observe" then
    -- Observe mode: keyward plans and reports but changes nothing, by design.
    hs.status = "Suspended"
    hs.message = "Observe mode (plans, changes nothing): " .. hs.message
  end
elseif ready.status == "False" then
  -- The contract pairs Ready=False with Reconciling or Stalled; alone, it is an error.
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
else
  hs.status = "Progressing"
  hs.message = describe(ready, "Readiness unknown")
end

return hs
