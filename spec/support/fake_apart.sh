#!/usr/bin/env bash
# Runs spec/run --kubeconfig against a fake API server started apart from
# the specs, as a real cluster's would be (the CI's check of that mode,
# .ci/run): spec/support/fake_kube.py on a loopback port, with no options but
# the minor it reports, and a kubeconfig that names it. The server stops, and
# its dir goes, when spec/run has ended; the exit status is spec/run's.
#
#   spec/support/fake_apart.sh MINOR [spec/run's arguments...]
set -uo pipefail
cd "$(dirname "$0")/../.."
minor=${1:?usage: spec/support/fake_apart.sh MINOR [spec/run arguments...]}
shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/esb-fake-apart.XXXXXX")
# Not one of spec/run's processes: the specs' leak checks do not count it.
env -u ESB_SPEC_MARK python3 spec/support/fake_kube.py --port-file "$dir/port" --minor "$minor" > "$dir/log" 2>&1 &
fake=$!
stop() {
  kill "$fake" 2>/dev/null
  wait "$fake" 2>/dev/null
  rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 500); do [ -s "$dir/port" ] && break; sleep 0.01; done
[ -s "$dir/port" ] || { echo "the fake API server did not start: $(cat "$dir/log")" >&2; exit 2; }
cat > "$dir/kubeconfig" <<END
apiVersion: v1
kind: Config
clusters:
- name: fake-apart
  cluster: {server: "http://127.0.0.1:$(cat "$dir/port")"}
contexts:
- name: fake-apart
  context: {cluster: fake-apart, user: fake-apart}
current-context: fake-apart
users:
- name: fake-apart
  user: {token: fake}
END
spec/run --kubeconfig "$dir/kubeconfig" "$@"
