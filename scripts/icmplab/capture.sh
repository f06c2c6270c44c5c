#!/bin/sh
# Records real ICMP tunnels and C2 (ptunnel-ng, ptunnel, icmptx, an icmpsh
# look-alike) and the ICMP an ordinary network sends (ping, a fleet
# pinging one target, traceroute over UDP and ICMP) between three network
# namespaces this script creates and removes: inside hosts 10.42.0.2-17,
# a router (10.42.0.1 / 203.0.113.1) and outside addresses 203.0.113.8-11
# (ping targets), .66 (the tunnels' proxy, the controller) and .99
# (traceroute's target). Only the inside side's link is recorded.
# Needs root, ptunnel-ng, ptunnel, icmptx, iputils-ping, traceroute,
# tcpdump, curl and python3. Usage:
#   capture.sh OUTDIR
set -eu
out=${1:?usage: capture.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
work=$(mktemp -d)
in=icmplab-in rt=icmplab-rt ex=icmplab-out
cleanup() {
	for p in $(cat "$work"/pids 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	ip netns del $in 2>/dev/null || true
	ip netns del $rt 2>/dev/null || true
	ip netns del $ex 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add $in
ip netns add $rt
ip netns add $ex
ip link add icmplab0 type veth peer name icmplab1
ip link add icmplab2 type veth peer name icmplab3
ip link set icmplab0 netns $in
ip link set icmplab1 netns $rt
ip link set icmplab2 netns $rt
ip link set icmplab3 netns $ex
for n in $in $rt $ex; do ip -n $n link set lo up; done
for i in $(seq 2 17); do ip -n $in addr add 10.42.0.$i/24 dev icmplab0; done
ip -n $in link set icmplab0 up
ip -n $in route add default via 10.42.0.1
ip -n $rt addr add 10.42.0.1/24 dev icmplab1
ip -n $rt addr add 203.0.113.1/24 dev icmplab2
ip -n $rt link set icmplab1 up
ip -n $rt link set icmplab2 up
ip netns exec $rt sysctl -qw net.ipv4.ip_forward=1
# .66 first: the primary address, the one raw sockets (the tunnels, the
# controller) send from.
for a in 66 8 9 10 11 99; do ip -n $ex addr add 203.0.113.$a/24 dev icmplab3; done
ip -n $ex link set icmplab3 up
ip -n $ex route add default via 203.0.113.1
bg() { "$@" & echo $! >>"$work"/pids; }
stop() {
	for p in $(cat "$work"/pids); do kill "$p" 2>/dev/null || true; done
	: >"$work"/pids
	sleep 2
}
rec() { bg ip netns exec $in tcpdump -i icmplab0 -s 0 -U -w "$out/$1" "$2"; sleep 1; }

# The outside web server's payload: 24 KiB of text fetched through the tunnels.
mkdir "$work"/www
python3 -c 'import random; random.seed(7); print("\n".join("line %d %s" % (i, "".join(random.choice("abcdefghij") for _ in range(40))) for i in range(500)))' >"$work"/www/data.txt
fetch3() { for i in 1 2 3; do ip netns exec $in curl -s -m 30 -o /dev/null "$1" || true; sleep 4; done; }

# ptunnel-ng: TCP over echo requests and replies (the proxy crafts its own
# replies; the kernel's echoes of the requests stay on).
rec ptunnel-ng.pcap icmp
bg ip netns exec $ex python3 -m http.server 8000 --bind 127.0.0.1 --directory "$work"/www
bg ip netns exec $ex ptunnel-ng -v -1 -r127.0.0.1 -R8000
sleep 1
bg ip netns exec $in ptunnel-ng -v -1 -p203.0.113.66 -l2222 -r127.0.0.1 -R8000
sleep 2
fetch3 http://127.0.0.1:2222/data.txt
sleep 5
stop

# ptunnel 0.72, the original.
rec ptunnel.pcap icmp
bg ip netns exec $ex python3 -m http.server 8000 --bind 127.0.0.1 --directory "$work"/www
bg ip netns exec $ex ptunnel -v -1 -da 127.0.0.1 -dp 8000
sleep 1
bg ip netns exec $in ptunnel -v -1 -p 203.0.113.66 -lp 2223 -da 127.0.0.1 -dp 8000
sleep 2
fetch3 http://127.0.0.1:2223/data.txt
sleep 5
stop

# icmptx: IP over ICMP, a tun device each side.
rec icmptx.pcap icmp
bg ip netns exec $ex icmptx -s 203.0.113.66
sleep 1
ip -n $ex addr add 10.0.3.1/24 dev tun0
ip -n $ex link set tun0 up
bg ip netns exec $in icmptx -c 203.0.113.66
sleep 1
ip -n $in addr add 10.0.3.2/24 dev tun0
ip -n $in link set tun0 up
bg ip netns exec $ex python3 -m http.server 8001 --bind 10.0.3.1 --directory "$work"/www
sleep 2
fetch3 http://10.0.3.1:8001/data.txt
sleep 5
stop

# The icmpsh look-alike: 30 polls every 4 s ±25% from 10.42.0.2, four
# commands and their output. The controller answers itself.
ip netns exec $ex sysctl -qw net.ipv4.icmp_echo_ignore_all=1
rec icmpsh.pcap icmp
bg ip netns exec $ex python3 "$here"/icmpsh_like.py master 10.42.0.2
sleep 1
ip netns exec $in python3 "$here"/icmpsh_like.py slave 203.0.113.66 30 4 0.25
sleep 2
stop
ip netns exec $ex sysctl -qw net.ipv4.icmp_echo_ignore_all=0

# Ordinary pings: 16 hosts ping 203.0.113.8 every 2 s (a fleet's
# monitoring target); 10.42.0.2 also pings .9 every 5 s (one host's
# monitor nobody else uses), .3 pings .10 with Windows' 32 bytes, .4
# probes .11 with 1472-byte don't-fragment pings (path MTU) every 3 s.
rec pings.pcap icmp
for i in $(seq 2 17); do bg ip netns exec $in ping -q -I 10.42.0.$i -i 2 -c 45 203.0.113.8; done
bg ip netns exec $in ping -q -I 10.42.0.2 -i 5 -c 18 203.0.113.9
bg ip netns exec $in ping -q -I 10.42.0.3 -s 32 -i 2 -c 45 203.0.113.10
bg ip netns exec $in ping -q -I 10.42.0.4 -M do -s 1472 -i 3 -c 30 203.0.113.11
sleep 92
stop

# Traceroute, UDP (the default) and ICMP (-I), three times each.
rec traceroute.pcap 'icmp or udp'
for i in 1 2 3; do
	ip netns exec $in traceroute -n -s 10.42.0.2 203.0.113.99 >/dev/null || true
	ip netns exec $in traceroute -n -I -s 10.42.0.2 203.0.113.99 >/dev/null || true
	sleep 5
done
sleep 1
stop
ls -l "$out"
