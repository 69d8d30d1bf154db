-- What each fault of a Kubernetes run ends as: the one place that says it.
-- The k8s specs check each case's result against the row of its id
-- (M.expect); spec/k8s_faults_spec.lua checks that the fault table of the
-- docs (between its k8s-faults markers, in README.md or doc/kubernetes.md)
-- is M.markdown() of these rows, and that every row has a spec case.
local M = {}

-- id, the fault, status, reason (a list: any of them), retryable (nil: the
-- result is the program's, which has no retryable)
M.rows = {
  { "grace_deadline", "A program that ignores SIGTERM passes its deadline (it is gone within `kill_grace_ms` + 1 s)",
    "timed_out", "DeadlineExceeded", nil },
  { "grace_sigterm", "SIGTERM to the CLI while a program that ignores SIGTERM runs (likewise)",
    "error", "interrupted", false },
  { "drained", "The pod is deleted from outside (a drain: deletionTimestamp) while the program runs, whatever the "
    .. "program's exit", "error", "Deleted", true },
  { "deleted", "The pod is deleted from outside at once (no grace) while the program runs", "error", "Deleted", true },
  { "drained_early", "The pod is deleted before the pod watch starts (the run's first second)",
    "error", "Deleted", true },
  { "watch_expired", "The pod is deleted while the pod watch is down (410 Expired, a cut stream)",
    "error", "Deleted", true },
  { "evicted", "The kubelet evicts the pod while the program runs (its message kept)", "error", "Evicted", true },
  { "unknown", "The pod's phase is Unknown (its node is lost)", "error", "NodeLost", true },
  { "notready", "Ready=False (NodeNotReady) and the program silent for `k8s.not_ready_grace_ms`",
    "error", "NodeNotReady", true },
  { "restart", "The kubelet restarts the program's container", "error", "Restarted", true },
  { "restart_policy", "A site policy sets `restartPolicy: Always`; the program exits 1 (the engine keeps Never)",
    "exited", "Error", nil },
  { "crashloop", "A site's mutating admission webhook sets `restartPolicy: Always`; the program exits 1 and the "
    .. "kubelet restarts it", "error", "CrashLoopBackOff", false },
  { "image_pull", "The image cannot be pulled (ended at once, the image and the pull error named)",
    "error", { "ErrImagePull", "ImagePullBackOff" }, false },
  { "pending", "The pod stays Pending (no node fits it) until the deadline", "error", "Unschedulable", true },
  { "unschedulable", "The pod stays unschedulable for `k8s.unschedulable_grace_ms` (the scheduler's message kept)",
    "error", "Unschedulable", true },
  { "attach_dropped", "The attach breaks while the program runs (kubectl falls back to the pod's log): the output "
    .. "so far kept", "error", "AttachLost", true },
  { "outage", "The API server is unreachable for a while as the program runs (the delete is tried until it "
    .. "passes)", "error", "AttachLost", true },
  { "attach_forbidden", "kubectl may not attach (`create` on `pods/attach` missing)", "error", "AttachForbidden",
    false },
  { "hung", "The API server stops answering once the pod exists (after the deadline, the get and the delete "
    .. "share `k8s.delete_timeout_ms`)", "error", "KubectlTimeout", true },
  { "slow_start", "Every call after the create is slow: the deadline passes before kubectl attached",
    "error", "KubectlTimeout", true },
  { "wrapper_failed", "A step of the files wrapper fails before the program (the step and its tool's words named)",
    "error", "WrapperFailed", false },
  { "unreachable", "The API server cannot be reached (connection refused, no such host, no route, TLS handshake "
    .. "timeout, no API server at that address): the create is tried again until the deadline; no pod was made, "
    .. "none is read or deleted (but the one a try the deadline cut short may have made)", "error", "Unreachable",
    true },
  { "create_failing", "Every create answers 503 (ServiceUnavailable) until the deadline",
    "error", "backend_error", true },
  { "create_cut", "Every create answers 503, and the deadline cuts a try short before its answer came: the 503 "
    .. "said (not a timeout), the pod that try may have made looked for and deleted", "error", "backend_error", true },
  { "forbidden", "The create is forbidden (403: the account may not create pods there)", "error", "backend_error", false },
  { "throttled", "429 Too Many Requests (with or without Retry-After) until the deadline",
    "error", "Throttled", true },
  { "quota", "The create is refused: `exceeded quota` (403)", "error", "ExceededQuota", true },
  { "adopted", "The create's 201 answer is cut (`unexpected EOF`), the pod is the run's: adopted, the program's "
    .. "exit 3", "exited", "Error", nil },
  { "not_ours", "The create's answer is cut and the pod of that name is another instance's (left alone)",
    "error", "PodNotOurs", false },
}

M.by_id = {}
for _, row in ipairs(M.rows) do M.by_id[row[1]] = row end

local function reasons(row)
  return type(row[4]) == "table" and row[4] or { row[4] }
end

-- The result is what the fault table says of fault id.
function M.expect(r, id)
  local assert = require "luassert"
  local row = assert(M.by_id[id], "no row of the fault table for " .. id)
  local text = require("cjson").encode(r)
  assert.are.equal(row[3], r.status, text)
  local reason_ok = false
  for _, reason in ipairs(reasons(row)) do reason_ok = reason_ok or reason == r.reason end
  assert.is_true(reason_ok, "reason: " .. text)
  if row[5] == nil then
    assert.is_nil(r.error, text)
  else
    assert.are.equal(row[5], r.error and r.error.retryable, text)
  end
end

-- The table of the docs.
function M.markdown()
  local lines = { "| Fault | status | reason | retryable |", "|---|---|---|---|" }
  for _, row in ipairs(M.rows) do
    local retryable = row[5] == nil and "—" or tostring(row[5])
    local said = {}
    for _, reason in ipairs(reasons(row)) do said[#said + 1] = ("`%s`"):format(reason) end
    lines[#lines + 1] = ("| %s | `%s` | %s | %s |"):format(row[2], row[3], table.concat(said, " or "), retryable)
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The files that may hold the table (it is in one of them), and the markers
-- around it.
M.homes = { "README.md", "doc/kubernetes.md" }
M.pattern = "<!%-%- k8s%-faults %-%->\n(.-)<!%-%- /k8s%-faults %-%->"

-- The ids of the fault table that the k8s specs' cases expect: a literal
-- id in `expect(r, "id")`, or in a case's `fault = "id"` that a loop passes
-- to expect.
function M.expected_ids(text)
  local ids = {}
  for id in text:gmatch("expect%(%s*[%w_.]+%s*,%s*\"([%w_]+)\"%s*%)") do ids[id] = true end
  if text:find("expect%(%s*[%w_.]+%s*,%s*[%w_]+%.fault%s*%)") then
    for id in text:gmatch("fault%s*=%s*\"([%w_]+)\"") do ids[id] = true end
  end
  return ids
end

-- `lua5.4 spec/support/k8s_faults.lua` prints the table, for the docs.
if arg and arg[0] and arg[0]:match("k8s_faults%.lua$") then io.write(M.markdown()) end

return M
