#!/usr/bin/env bash
# Shapes a network namespace's loopback with tc's token bucket filter, for runs as root: start
# split-server and split-client inside the namespace and every byte between them crosses a link of
# the given rate (in both directions: they share the one loopback). This kernel has no netem, so
# there is no delay here; for delay and jitter (and no root) use split-linkemu.
#
#   tools/netns-link.sh up   [--ns NAME] --rate RATE [--burst SIZE] [--limit SIZE]
#   tools/netns-link.sh set  [--ns NAME] --rate RATE [--burst SIZE] [--limit SIZE]   (while running)
#   tools/netns-link.sh show [--ns NAME]
#   tools/netns-link.sh down [--ns NAME]
#   ip netns exec NAME build/release/tools/split-server --models models --listen 127.0.0.1:7070 &
#   ip netns exec NAME build/release/tools/split-client --server 127.0.0.1:7070 ...
#
# RATE and SIZE in tc's units (e.g. 5mbit, 32kb). Defaults: namespace libsplit-link, burst 16kb
# (tbf needs at least one packet's worth), limit 256kb of queue. Loopback's MTU is lowered to 1500
# first: tbf drops the 64 KiB packets of the default loopback.
set -euo pipefail
cmd=${1:-}
shift || true
NS=libsplit-link RATE="" BURST=16kb LIMIT=256kb
while (($#)); do
  case "$1" in
    --ns) NS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    *) echo "netns-link: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
die() { echo "netns-link: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (ip netns, tc)"
command -v ip > /dev/null && command -v tc > /dev/null || die "needs ip and tc (Debian package iproute2)"
[[ $NS =~ ^[A-Za-z0-9_.-]+$ ]] || die "--ns '$NS': letters, digits, '.', '_' and '-' only"
need_rate() { [[ -n $RATE ]] || die "$cmd needs --rate (e.g. --rate 5mbit)"; }
case "$cmd" in
  up)
    need_rate
    ip netns list | grep -qw -- "$NS" && die "namespace $NS exists already (use set, or down first)"
    ip netns add "$NS"
    if ! { ip -n "$NS" link set lo mtu 1500 && ip -n "$NS" link set lo up &&
           ip netns exec "$NS" tc qdisc add dev lo root tbf rate "$RATE" burst "$BURST" limit "$LIMIT"; }; then
      ip netns del "$NS"
      die "could not shape $NS (rate '$RATE', burst '$BURST', limit '$LIMIT')"
    fi
    echo "netns-link: $NS up: loopback at $RATE (burst $BURST, queue $LIMIT)"
    ;;
  set)
    need_rate
    ip netns exec "$NS" tc qdisc change dev lo root tbf rate "$RATE" burst "$BURST" limit "$LIMIT" ||
      die "could not change $NS to rate '$RATE' (is it up?)"
    echo "netns-link: $NS now at $RATE"
    ;;
  show)
    ip netns exec "$NS" tc -s qdisc show dev lo
    ;;
  down)
    ip netns del "$NS" || die "no namespace $NS"
    echo "netns-link: $NS removed"
    ;;
  *)
    echo "usage: netns-link.sh up|set|show|down [--ns NAME] [--rate RATE] [--burst SIZE] [--limit SIZE]" >&2
    exit 2
    ;;
esac
