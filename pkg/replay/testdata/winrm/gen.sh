#!/usr/bin/env bash
# Regenerates the WinRM test captures (run as root, from this directory):
# pywinrm (Debian python3-winrm) as the real client against responder.py
# in two network namespaces joined by a veth pair, captured with tcpdump.
# Writes ntlm.pcap and basic.pcap, and the client's own log of what it sent
# and received in clear (ntlm.jsonl, basic.jsonl): the tests' oracle.
# The namespaces and servers exist only while this runs.
set -euo pipefail
cd "$(dirname "$0")"
user='CORP\alice' password='Winrm-Lab-2026!'
tag=nwhwr$$
cli=$tag-c srv=$tag-s
cleanup() {
  [ -n "${resp:-}" ] && kill "$resp" 2>/dev/null || true
  [ -n "${dump:-}" ] && kill "$dump" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  rm -f "${conf:-}"
}
trap cleanup EXIT
# NTLM needs MD4, which OpenSSL 3 keeps in its legacy provider.
conf=$(mktemp)
printf '%s\n' 'openssl_conf = init' '[init]' 'providers = prov' '[prov]' 'default = on' 'legacy = on' \
  '[on]' 'activate = 1' > "$conf"
export OPENSSL_CONF=$conf
ip netns add "$cli"
ip netns add "$srv"
ip link add "$tag-a" netns "$cli" type veth peer name "$tag-b" netns "$srv"
ip -n "$cli" addr add 10.77.0.1/24 dev "$tag-a"
ip -n "$srv" addr add 10.77.0.2/24 dev "$tag-b"
ip -n "$cli" link set "$tag-a" up
ip -n "$srv" link set "$tag-b" up
ip -n "$cli" link set lo up
ip -n "$srv" link set lo up
ethtool_off() { ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true; }
ethtool_off "$cli" "$tag-a"
ethtool_off "$srv" "$tag-b"

for kind in ntlm basic; do
  ip netns exec "$srv" /usr/bin/python3 responder.py 5985 "$user" "$password" &
  resp=$!
  ip netns exec "$cli" tcpdump -i "$tag-a" -U -s 0 -w "$kind.pcap" tcp port 5985 2>/dev/null &
  dump=$!
  sleep 1
  ip netns exec "$cli" /usr/bin/python3 client.py http://10.77.0.2:5985/wsman "$user" "$password" "$kind" "$kind.jsonl"
  sleep 1
  kill "$dump"; wait "$dump" || true; dump=
  kill "$resp"; wait "$resp" 2>/dev/null || true; resp=
done
