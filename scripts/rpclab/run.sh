#!/bin/sh
# Records real attack tools against the stand-in server (server.py) in two
# network namespaces joined by a veth pair: "dc" (10.0.0.2, DC01) and
# "att" (10.0.0.66, the attacker, with an SMB listener for the coerced
# callback). CA=NAME adds the certificate authority NAME on 10.0.0.3;
# LISTENER=0 leaves the attacker's port 445 to CMD (a relay);
# SERVER_ARGS='--password PW' lets the stand-in open and answer sealed
# calls of the lab account (DCOM clients need that). Nothing leaves the
# machine.
#
#   run.sh OUT.pcap CMD...
#
# CMD runs in the attacker namespace while tcpdump records the veth; the
# tools' checkouts are given by the caller (see testdata SOURCES.md for the
# command lines used). Needs root, iproute2, tcpdump, python3-impacket.
set -eu
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3 # Debian's python, where python3-impacket lives
dc=rpclab-dc
att=rpclab-att

cleanup() {
	[ -n "${dump:-}" ] && kill "$dump" 2>/dev/null || true
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
	[ -n "${lst:-}" ] && kill "$lst" 2>/dev/null || true
	[ -n "${ca:-}" ] && kill "$ca" 2>/dev/null || true
	ip netns del $dc 2>/dev/null || true
	ip netns del $att 2>/dev/null || true
}
trap cleanup EXIT INT TERM
cleanup

ip netns add $dc
ip netns add $att
ip link add rpclab0 netns $dc type veth peer name rpclab1 netns $att
ip -n $dc addr add 10.0.0.2/24 dev rpclab0
ip -n $dc addr add 10.0.0.3/24 dev rpclab0
ip -n $att addr add 10.0.0.66/24 dev rpclab1
for n in $dc $att; do
	ip -n $n link set lo up
done
ip -n $dc link set rpclab0 up
ip -n $att link set rpclab1 up

ip netns exec $dc $py "$here/server.py" --ip 10.0.0.2 ${SERVER_ARGS:-} >"$out.server.log" 2>&1 &
srv=$!
if [ -n "${CA:-}" ]; then
	# A second server, the certificate authority CA01 on 10.0.0.3.
	ip netns exec $dc $py "$here/server.py" --ip 10.0.0.3 --name CA01 --ca "$CA" >"$out.ca.log" 2>&1 &
	ca=$!
fi
# The attacker's listener for coerced authentication (what Responder or a
# relay would be): impacket's SMB server, which logs the NTLM exchange.
# LISTENER=0 leaves port 445 to the command (a relay).
if [ "${LISTENER:-1}" = 1 ]; then
	ip netns exec $att $py -c '
from impacket import smbserver
s = smbserver.SimpleSMBServer(listenAddress="10.0.0.66", listenPort=445)
s.setSMB2Support(True)
s.start()' >"$out.listener.log" 2>&1 &
	lst=$!
fi
sleep 2
ip netns exec $dc tcpdump -i rpclab0 -s 0 -U -w "$out" >/dev/null 2>&1 &
dump=$!
sleep 1
ip netns exec $att "$@" || echo "command exited $?" >&2
sleep 2
kill $dump
wait $dump 2>/dev/null || true
dump=
