#!/usr/bin/env bash
# Two machines, one job: run this on each host with its index (0 on host1, the chief; 1 on host2).
#   bash deploy/two_hosts.sh 0     # on host1
#   bash deploy/two_hosts.sh 1     # on host2
# Both hosts need the repository, the data at the same path, and one shared runs folder (NFS, say),
# so that --resume on every worker finds the chief's backup. Port 12345 must be open between them.
set -euo pipefail
INDEX=${1:?usage: two_hosts.sh WORKER_INDEX}
export TF_CONFIG="{\"cluster\": {\"worker\": [\"host1.example.com:12345\", \"host2.example.com:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": ${INDEX}}}"
exec python -m app.train mnist --data-dir /shared/data --runs-dir /shared/runs --out /shared/saved_models "${@:2}"
