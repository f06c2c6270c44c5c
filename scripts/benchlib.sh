# Sourced by bench-capture.sh and bench-workers.sh: the link they send
# over and the trafgen configuration of their frames, so both benches
# measure the same thing.

# bench_link NS_A NS_B DEV_A DEV_B: two silent namespaces (no IPv6, so no
# router solicitations) and a veth pair between them; addresses from
# 198.18.0.0/15, set aside for benchmarks. The caller deletes the
# namespaces.
bench_link() {
  local ns
  for ns in "$1" "$2"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip link add "$3" netns "$1" address 02:6e:77:68:00:0a type veth peer name "$4" netns "$2" address 02:6e:77:68:00:0b
  ip -n "$1" addr add 198.18.0.1/30 dev "$3"
  ip -n "$2" addr add 198.18.0.2/30 dev "$4"
  ip -n "$1" link set "$3" up
  ip -n "$2" link set "$4" up
}
#
# bench_frames LOAD FRAME: a FRAME-byte UDP frame to a MAC that is not the
# receiver's (its IP stack drops them unseen and answers nothing; a capture
# sees every one). LOAD "64": 64 source ports from 198.18.0.1; "new": a
# random source address in 10.0.0.0/8 and a random port in every frame, a
# flood or a scan, where every frame opens a flow.
bench_frames() {
  local src sport
  case $1 in
    64) src="198, 18, 0, 1"; sport="0x04, dinc(0, 63)" ;;
    new) src="10, drnd(3)"; sport="drnd(2)" ;;
    *) echo "load $1: want 64 or new" >&2; return 2 ;;
  esac
  cat <<CFG
{
  0x02, 0x6e, 0x77, 0x68, 0xff, 0xfe,  0x02, 0x6e, 0x77, 0x68, 0x00, 0x0a,
  c16(0x0800),
  0x45, 0x00, c16($(($2 - 14))), c16(0), c16(0x4000), 64, 17, csumip(14, 33),
  $src,  198, 18, 0, 2,
  $sport, c16(9), c16($(($2 - 34))), c16(0),
  fill(0x00, $(($2 - 42)))
}
CFG
}
