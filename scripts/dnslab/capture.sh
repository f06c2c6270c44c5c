#!/bin/sh
# Records real DNS tunnels (iodine, dns2tcp) between two network namespaces
# this script creates and removes: an inside client (10.53.0.2) and an
# outside authoritative server (198.51.100.53), joined by a veth pair.
# Needs root, iodine, dns2tcp, tcpdump, curl and python3. Usage:
#   capture.sh OUTDIR
set -eu
out=${1:?usage: capture.sh OUTDIR}
mkdir -p "$out"
work=$(mktemp -d)
cleanup() {
	for p in $(cat "$work"/pids 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	ip netns del dnslab-cli 2>/dev/null || true
	ip netns del dnslab-srv 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add dnslab-cli
ip netns add dnslab-srv
ip link add dnslab0 type veth peer name dnslab1
ip link set dnslab0 netns dnslab-cli
ip link set dnslab1 netns dnslab-srv
ip -n dnslab-cli addr add 10.53.0.2/24 dev dnslab0
ip -n dnslab-cli link set dnslab0 up
ip -n dnslab-cli link set lo up
ip -n dnslab-cli route add 198.51.100.0/24 dev dnslab0
ip -n dnslab-srv addr add 198.51.100.53/24 dev dnslab1
ip -n dnslab-srv link set dnslab1 up
ip -n dnslab-srv link set lo up
ip -n dnslab-srv route add 10.53.0.0/24 dev dnslab1
bg() { "$@" & echo $! >>"$work"/pids; }

# The server's payload: 24 KiB of text to fetch through the tunnels.
mkdir "$work"/www
python3 -c 'import random; random.seed(7); print("\n".join("line %d %s" % (i, "".join(random.choice("abcdefghij") for _ in range(40))) for i in range(500)))' >"$work"/www/data.txt
bg ip netns exec dnslab-srv python3 -m http.server 8000 --bind 127.0.0.1 --directory "$work"/www

# iodine: IP over DNS (NULL/TXT/CNAME... records, the client picks), a
# tun device each side; -r keeps it on DNS (no raw UDP shortcut).
bg ip netns exec dnslab-cli tcpdump -i dnslab0 -s 0 -U -w "$out"/iodine.pcap udp port 53
sleep 1
bg ip netns exec dnslab-srv iodined -f -c -P labsecret 10.99.0.1/24 t.example.com
sleep 1
bg ip netns exec dnslab-cli iodine -f -r -P labsecret 198.51.100.53 t.example.com
sleep 8
sleep 2
ip netns exec dnslab-srv sh -c 'python3 -m http.server 8001 --bind 10.99.0.1 --directory '"$work"'/www >/dev/null 2>&1 & echo $! >>'"$work"'/pids'
sleep 1
for i in 1 2 3; do ip netns exec dnslab-cli curl -s -m 20 -o /dev/null http://10.99.0.1:8001/data.txt || true; sleep 3; done
sleep 10
for p in $(cat "$work"/pids); do kill "$p" 2>/dev/null || true; done
: >"$work"/pids
sleep 2

# dns2tcp: TCP over DNS (TXT or KEY records), one resource forwarded.
cat >"$work"/dns2tcpd.conf <<CONF
listen = 198.51.100.53
port = 53
user = root
chroot = $work
domain = d.example.net
resources = web:127.0.0.1:8000
CONF
bg ip netns exec dnslab-srv python3 -m http.server 8000 --bind 127.0.0.1 --directory "$work"/www
bg ip netns exec dnslab-cli tcpdump -i dnslab0 -s 0 -U -w "$out"/dns2tcp.pcap udp port 53
sleep 1
bg ip netns exec dnslab-srv dns2tcpd -F -f "$work"/dns2tcpd.conf
sleep 1
bg ip netns exec dnslab-cli dns2tcpc -z d.example.net -r web -l 8080 198.51.100.53
sleep 3
for i in 1 2 3; do ip netns exec dnslab-cli curl -s -m 20 -o /dev/null http://127.0.0.1:8080/data.txt || true; sleep 5; done
sleep 2
