#!/usr/bin/env bash
# Test hosts on one machine: network namespaces joined by a bridge, with optional rate
# shaping (tc tbf) on each host's link. Needs root. It only touches the namespaces, veth
# pairs and bridge it creates (all named PREFIX-*), and `down` removes them all.
#
#   tools/netns-cluster.sh up N [RATE] [DELAY]
#                                        N hosts PREFIX-0..N-1 at 10.201.0.1..N, the bridge at
#                                        10.201.0.254 (reachable from this namespace); RATE
#                                        (e.g. 1gbit) shapes each host's egress (tc tbf); DELAY
#                                        (e.g. 0.2ms) adds a one-way delay with netem (rate and
#                                        delay together), which needs the kernel's sch_netem
#   tools/netns-cluster.sh exec I CMD... run CMD on host I
#   tools/netns-cluster.sh addr I        print host I's address
#   tools/netns-cluster.sh down          remove everything PREFIX-*
#
# PREFIX is $TORUS_NETNS_PREFIX, "torusns" by default. A failed `up` removes what it made.
set -euo pipefail
PREFIX=${TORUS_NETNS_PREFIX:-torusns}
if [ ${#PREFIX} -gt 10 ]; then
    echo "netns-cluster.sh: TORUS_NETNS_PREFIX must be at most 10 characters (interface names hold 15), got '$PREFIX'" >&2
    exit 2
fi
SUBNET=10.201.0

down() {
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}-[0-9]*$" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${PREFIX}-" || true); do
        ip link del "$link" 2>/dev/null || true
    done
}

cmd=${1:-}
case "$cmd" in
    up)
        n=${2:?usage: netns-cluster.sh up N [RATE]}
        rate=${3:-}
        delay=${4:-}
        if [ -n "$delay" ] && ! [[ "$delay" =~ ^[0-9.]+(us|ms)$ ]]; then
            echo "netns-cluster.sh: DELAY must look like 0.2ms or 200us, got '$delay'" >&2
            exit 2
        fi
        if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 32 ]; then
            echo "netns-cluster.sh: N must be in [1, 32], got '$n'" >&2
            exit 2
        fi
        trap 'down' ERR
        down
        ip link add "${PREFIX}-br" type bridge
        ip addr add "${SUBNET}.254/24" dev "${PREFIX}-br"
        ip link set "${PREFIX}-br" up
        for i in $(seq 0 $((n - 1))); do
            ns="${PREFIX}-$i"
            ip netns add "$ns"
            ip link add "${PREFIX}-v$i" type veth peer name eth0 netns "$ns"
            ip link set "${PREFIX}-v$i" master "${PREFIX}-br"
            ip link set "${PREFIX}-v$i" up
            ip netns exec "$ns" ip addr add "${SUBNET}.$((i + 1))/24" dev eth0
            ip netns exec "$ns" ip link set eth0 up
            ip netns exec "$ns" ip link set lo up
            if [ -n "$delay" ]; then
                if ! ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "$delay" ${rate:+rate "$rate"} limit 100000; then
                    echo "netns-cluster.sh: DELAY needs netem (the kernel module sch_netem), which this kernel does not offer" >&2
                    false
                fi
            elif [ -n "$rate" ]; then
                ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 100ms
            fi
        done
        trap - ERR
        ;;
    exec)
        i=${2:?usage: netns-cluster.sh exec I CMD...}
        shift 2
        exec ip netns exec "${PREFIX}-$i" "$@"
        ;;
    addr)
        i=${2:?usage: netns-cluster.sh addr I}
        echo "${SUBNET}.$((i + 1))"
        ;;
    down)
        down
        ;;
    *)
        echo "usage: netns-cluster.sh up N [RATE] [DELAY] | exec I CMD... | addr I | down" >&2
        exit 2
        ;;
esac
