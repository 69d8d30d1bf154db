-- What each fault of a Kubernetes run ends as: the one place that says it.
-- spec/k8s_life_spec.lua checks each of its cases' results against the row
-- of its id; spec/k8s_faults_spec.lua checks that doc/kubernetes.md's table (between
-- its k8s-faults markers) is M.markdown() of these rows.
local M = {}

-- id, the fault, status, reason, retryable (nil: the result is the
-- program's, which has no retryable)
M.rows = {
  { "grace_deadline", "A program that ignores SIGTERM passes its deadline (it is gone within `kill_grace_ms` + 1 s)",
    "timed_out", "DeadlineExceeded", nil },
  { "grace_sigterm", "SIGTERM to the CLI while a program that ignores SIGTERM runs (likewise)",
    "error", "interrupted", false },
  { "drained", "The pod is deleted from outside (a drain: deletionTimestamp) while the program runs, whatever the "
    .. "program's exit", "error", "Deleted", true },
  { "drained_early", "The pod is deleted before the pod watch starts (the run's first second)",
    "error", "Deleted", true },
  { "watch_expired", "The pod is deleted while the pod watch is down (410 Expired, a cut stream)",
    "error", "Deleted", true },
  { "unknown", "The pod's phase is Unknown (its node is lost)", "error", "NodeLost", true },
  { "notready", "Ready=False (NodeNotReady) and the program silent for `k8s.not_ready_grace_ms`",
    "error", "NodeNotReady", true },
  { "restart", "The kubelet restarts the program's container", "error", "Restarted", true },
  { "restart_policy", "A site policy sets `restartPolicy: Always`; the program exits 1 (the engine keeps Never)",
    "exited", "Error", nil },
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

-- The table of doc/kubernetes.md.
function M.markdown()
  local lines = { "| Fault | status | reason | retryable |", "|---|---|---|---|" }
  for _, row in ipairs(M.rows) do
    local retryable = row[5] == nil and "—" or tostring(row[5])
    lines[#lines + 1] = ("| %s | `%s` | `%s` | %s |"):format(row[2], row[3], row[4], retryable)
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
