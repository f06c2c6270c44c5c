#!/bin/sh
# Records Kerberos-authenticated remote operations against a real Samba AD
# DC in two network namespaces joined by a veth pair: "dc" (10.0.1.2,
# dc01.krblab.test, realm KRBLAB.TEST) and "cli" (10.0.1.66, the client).
# Each capture is one client command; the DC's keytab (every account's
# keys, exported with samba-tool) is written beside them. Nothing leaves
# the machine.
#
#   run.sh OUTDIR
#
# With RC4=1 the DC's KDC issues rc4-hmac only (kdc supported enctypes):
# tickets, session keys and subkeys of RFC 4757, as older Windows domains
# and downgrade attacks use; the captures and keytab then get a _rc4
# suffix and the DCSync is left out.
#
# Needs root, iproute2, tcpdump, and the Debian packages python3-gssapi,
# python3-winrm, samba,
# samba-ad-provision, samba-ad-dc, krb5-user,
# smbclient. The lab's password is fixed: the
# captures and keytab are test data.
set -eu
out=$(mkdir -p "$1" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
dc=krblab-dc
cli=krblab-cli
realm=KRBLAB.TEST
pass='Krblab-Pass1'
work=$(mktemp -d)

cleanup() {
	[ -n "${dump:-}" ] && kill "$dump" 2>/dev/null || true
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
	[ -n "${wsrv:-}" ] && kill "$wsrv" 2>/dev/null || true
	sleep 1
	ip netns del $dc 2>/dev/null || true
	ip netns del $cli 2>/dev/null || true
	rm -rf /etc/netns/$dc /etc/netns/$cli "$work"
}
trap cleanup EXIT INT TERM
cleanup
work=$(mktemp -d)

ip netns add $dc
ip netns add $cli
ip link add krblab0 netns $dc type veth peer name krblab1 netns $cli
ip -n $dc addr add 10.0.1.2/24 dev krblab0
ip -n $cli addr add 10.0.1.66/24 dev krblab1
for n in $dc $cli; do ip -n $n link set lo up; done
ip -n $dc link set krblab0 up
ip -n $cli link set krblab1 up

# Names: ip netns exec binds /etc/netns/NAME/* over /etc.
for n in $dc $cli; do
	mkdir -p /etc/netns/$n
	printf '127.0.0.1 localhost\n10.0.1.2 dc01.krblab.test dc01\n' >/etc/netns/$n/hosts
	printf 'nameserver 10.0.1.2\nsearch krblab.test\n' >/etc/netns/$n/resolv.conf
done
cat >"$work/krb5.conf" <<EOK
[libdefaults]
	default_realm = $realm
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
[realms]
	$realm = {
		kdc = 10.0.1.2
	}
[domain_realm]
	.krblab.test = $realm
	krblab.test = $realm
EOK
export KRB5_CONFIG="$work/krb5.conf"

ip netns exec $dc samba-tool domain provision --targetdir="$work/dc" \
	--use-rfc2307 --realm=$realm --domain=KRBLAB --server-role=dc \
	--dns-backend=SAMBA_INTERNAL --adminpass="$pass" --host-name=dc01 \
	--option="interfaces=10.0.1.2" --option="bind interfaces only=yes" \
	--option="dns forwarder=127.0.0.1" ${RC4:+--option="kdc supported enctypes=4"} >"$out/provision.log" 2>&1 || { cat "$out/provision.log" >&2; exit 1; }
conf="$work/dc/etc/smb.conf"
mkdir -p "$work/share"
chmod 755 "$work"
chmod 1777 "$work/share"
cat >>"$conf" <<EOS
[data]
	path = $work/share
	read only = no
EOS
ip netns exec $dc samba-tool user create alice "$pass" -s "$conf" >/dev/null
ip netns exec $dc samba -i -s "$conf" >"$out/samba.log" 2>&1 &
srv=$!
sleep 8
sfx=${RC4:+_rc4}
ip netns exec $dc samba-tool domain exportkeytab "$out/krblab$sfx.keytab" -s "$conf"
head -c 20000 /dev/urandom | base64 >"$work/report.txt"

# rec NAME CMD...: record CMD run in the client namespace.
rec() {
	name=$1
	shift
	ip netns exec $dc tcpdump -i krblab0 -s 0 -U -w "$out/$name$sfx.pcap" >/dev/null 2>&1 &
	dump=$!
	sleep 1
	export KRB5CCNAME="$work/ccache"
	ip netns exec $cli "$@" || echo "$name: command exited $?" >&2
	sleep 1
	kill $dump
	wait $dump 2>/dev/null || true
	dump=
}
kin() { echo "$pass" | KRB5CCNAME="$work/ccache" ip netns exec $cli kinit "$1@$realm" >/dev/null; }

kin alice
# An SMB3-encrypted Kerberos session with file operations.
rec smb3_kerberos smbclient --use-kerberos=required --client-protection=encrypt -m SMB3 //dc01.krblab.test/data \
	-c "put $work/report.txt report.txt; get report.txt $work/back.txt; ls; rm report.txt"
# Sealed SAMR over TCP (Kerberos, packet privacy).
rec samr_kerberos_sealed rpcclient --use-kerberos=required 'ncacn_ip_tcp:dc01.krblab.test[seal]' \
	-c 'enumdomusers; queryuser alice'
# WinRM with Kerberos message encryption: pywinrm's envelopes over MIT
# GSS-API wrapping, against a stand-in service on 5985 (winrm_kerberos.py)
# holding the DC01$ keys under HTTP/dc01.krblab.test.
ip netns exec $dc samba-tool spn add HTTP/dc01.krblab.test 'DC01$' -s "$conf" >/dev/null 2>&1 || true
ip netns exec $dc samba-tool domain exportkeytab "$work/http.keytab" --principal=HTTP/dc01.krblab.test -s "$conf" >/dev/null
KRB5_KTNAME="$work/http.keytab" ip netns exec $dc /usr/bin/python3 "$here/winrm_kerberos.py" server 10.0.1.2 5985 >"$out/winrm.log" 2>&1 &
wsrv=$!
sleep 1
rec winrm_kerberos /usr/bin/python3 "$here/winrm_kerberos.py" client dc01.krblab.test 5985 whoami
kill $wsrv
if [ -n "${RC4:-}" ]; then
	echo "done: $out"
	exit 0
fi
kin Administrator
# DCSync of krbtgt over Kerberos-sealed DRSUAPI (Samba's client: impacket
# 0.10's Kerberos DCE/RPC fails against this DC, KRB_AP_ERR_INAPP_CKSUM on
# its own TGS-REQ, nca_proto_error on its alter_context).
rec dcsync_kerberos /usr/bin/python3 "$here/dcsync.py" dc01.krblab.test "CN=krbtgt,CN=Users,DC=krblab,DC=test"
echo "done: $out"
