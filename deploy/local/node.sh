#!/usr/bin/env bash
# Runs a Node.js script with a Node that can run the project's TypeScript as is
# (type stripping without flags from 22.18; @platformatic/kafka, the group-less reader, wants 22.22). When the system's Node is
# older, Node 24 comes from the npm registry's node-<os>-<arch> package (a real
# binary) into a git-ignored cache, once; nothing is asked of the user.
#
#   deploy/local/node.sh <script.ts> [args...]   run a script
#   deploy/local/node.sh --jemalloc <args...>    the same on jemalloc (npm start: the gateway as shipped)
#   deploy/local/node.sh --bin                   print the directory of the node binary
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The LTS line this project targets; bumped by hand, as the lockfile is.
node_version=24.21.0
min_major=22
min_minor=22

usable () {
  local v
  v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  (( major > min_major || (major == min_major && minor >= min_minor) ))
}

node_dir=""
if command -v node >/dev/null 2>&1 && usable "$(command -v node)"; then
  node_dir=$(dirname "$(command -v node)")
else
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "node.sh: no Node $node_version package for $(uname -m)" >&2; exit 1 ;;
  esac
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  node_dir="$root/.cache/node/$node_version/bin"
  if [ ! -x "$node_dir/node" ]; then
    echo "node.sh: system Node is older than $min_major.$min_minor; fetching Node $node_version from the npm registry" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "node-$os-$arch@$node_version" >/dev/null)
    mkdir -p "$root/.cache/node/$node_version"
    tar xzf "$tmp"/node-*.tgz -C "$root/.cache/node/$node_version" --strip-components=1 package/bin package/LICENSE
    "$node_dir/node" --version >/dev/null
  fi
fi

if [ "${1:-}" = "--bin" ]; then
  echo "$node_dir"
  exit 0
fi

export PATH="$node_dir:$PATH"

# --jemalloc: the gateway's allocator (npm start; the image sets the same two
# variables). glibc's malloc keeps what V8's background compiler used while a
# fresh gateway's paths got hot: 5-14 MiB over its first 1,000 topics, which
# then cost 10.5-27.1 KiB of RSS each beyond their sockets, and 6.6-9.9 on
# jemalloc (bench/idle-topics.ts; bench/README.md, "The allocator").
# Its background thread returns freed pages within about a second
# (dirty_decay_ms), also on an idle node. Debian's libjemalloc2 (redis-server's
# packages depend on it, so the dev stack's machines have it); without it,
# glibc's malloc and a line saying so; SLUICE_MALLOC=glibc asks for glibc's.
# A MALLOC_CONF of the caller's wins.
if [ "${1:-}" = "--jemalloc" ]; then
  shift
  if [ "${SLUICE_MALLOC:-jemalloc}" = "glibc" ]; then
    :
  # ld.so says on stderr when it cannot preload a library; /bin/true says nothing else
  elif [ -z "$(LD_PRELOAD=libjemalloc.so.2 /bin/true 2>&1)" ]; then
    export LD_PRELOAD="libjemalloc.so.2${LD_PRELOAD:+:$LD_PRELOAD}"
    export MALLOC_CONF="${MALLOC_CONF:-background_thread:true,dirty_decay_ms:1000}"
  else
    echo "node.sh: libjemalloc.so.2 is not installed (Debian: apt-get install libjemalloc2); running on glibc's malloc" >&2
  fi
fi
# A fresh clone (or a changed lockfile) installs its dependencies first, so that
# `npm run dev` and `npm test` are the only commands a newcomer needs. npm runs
# under the Node found above, so that install scripts see the Node that will run them.
if [ ! -f "$root/node_modules/.package-lock.json" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
  echo "node.sh: installing dependencies (npm ci)" >&2
  (cd "$root" && npm ci --no-audit --no-fund >&2)
fi

# kafkajs 2.2.4 computes a negative timer in its request queue on Node 23+ and
# Node warns on every one; silence only that. (Node clamps it to 1 ms, which kept
# each admin connection checking its queue every millisecond for good, 2.7 % of a
# core: packages/kafka/src/kafkajs-idle.ts stops that loop; the warning stays for
# the throttle timers kafkajs still computes the same way.)
export NODE_OPTIONS="--disable-warning=TimeoutNegativeWarning ${NODE_OPTIONS:-}"
cd "$root"
exec node "$@"
