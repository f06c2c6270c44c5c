#!/usr/bin/env python3
"""Writes encap.pcap: short conversations inside the tunnels nwhealth opens
since GTP-U, Teredo, VXLAN-GPE, PPTP, L2TP and AYIYA support, built with
scapy (Debian's python3-scapy 2.5), an encoder independent of nwhealth's.
Each tunnel has its own inner and outer addresses, so a query for one host
finds one tunnel's packets. Some packets are tunnel traffic that carries no
IP packet, and one is ordinary UDP that looks a little like IPv6: those
stay outer packets. Deterministic: run it again and the bytes are the same.

    python3 testdata/encap/gen.py testdata/encap/encap.pcap
"""
import sys

from scapy.all import Ether, IP, IPv6, UDP, TCP, ICMPv6ND_RS, ICMPv6ND_RA, Raw, wrpcap
from scapy.layers.l2 import GRE_PPTP
from scapy.layers.ppp import HDLC, PPP
from scapy.layers.l2tp import L2TP
from scapy.layers.vxlan import VXLAN
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer

T0 = 1767225600  # 2026-01-01T00:00:00Z
frames = []


def add(pkt):
    # Ethernet between a fixed pair of MACs; one millisecond apart.
    f = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt
    f.time = T0 + len(frames) / 1000
    frames.append(f)


def tcp_conversation(cli, srv, sport, dport, ipcls=IP):
    """The inner packets of a short TCP exchange, each with its direction
    (True: client to server)."""
    c2s = dict(src=cli, dst=srv)
    s2c = dict(src=srv, dst=cli)
    req = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    return [
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="S", seq=1000)),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="SA", seq=5000, ack=1001)),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=5001)),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=5001) / req),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="PA", seq=5001, ack=1001 + len(req)) / resp),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="FA", seq=1001 + len(req), ack=5001 + len(resp))),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="FA", seq=5001 + len(resp), ack=1002 + len(req))),
    ]


def dns_exchange(cli, srv, sport, ipcls=IP):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    return [
        (True, ipcls(src=cli, dst=srv) / UDP(sport=sport, dport=53) / q),
        (False, ipcls(src=srv, dst=cli) / UDP(sport=53, dport=sport) / (q[:2] + b"\x81\x80" + q[4:])),
    ]


# GTP-U between an eNodeB (192.0.2.21) and an SGW-U (198.51.100.21):
# plain G-PDUs uplink, sequence-numbered ones downlink.
for i, (up, inner) in enumerate(tcp_conversation("10.201.0.2", "203.0.113.80", 49200, 80)):
    if up:
        add(IP(src="192.0.2.21", dst="198.51.100.21") / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x1001, gtp_type=255) / inner)
    else:
        add(IP(src="198.51.100.21", dst="192.0.2.21") / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x2001, gtp_type=255, S=1, seq=i) / inner)
# 5G N3 (gNB 192.0.2.22, UPF 198.51.100.22): the PDU session container
# extension header (uplink and downlink types), IPv6 inside.
for up, inner in dns_exchange("2001:db8:202::2", "2001:db8:202::53", 40123, IPv6):
    if up:
        add(IP(src="192.0.2.22", dst="198.51.100.22") / UDP(sport=31000, dport=2152) / GTP_U_Header(teid=0x3001, gtp_type=255, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=1, QFI=9) / inner)
    else:
        add(IP(src="198.51.100.22", dst="192.0.2.22") / UDP(sport=31001, dport=2152) / GTP_U_Header(teid=0x4001, gtp_type=255, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=0, QFI=9) / inner)
# An echo request: GTP-U signalling, no packet inside.
add(IP(src="192.0.2.21", dst="198.51.100.21") / UDP(sport=2152, dport=2152) / GTP_U_Header(gtp_type=1, S=1, seq=7))

# Teredo qualification with a server (198.51.100.23, port 3544): a router
# solicitation with an authentication indication, the advertisement back
# with authentication and origin indications.
auth = b"\x00\x01\x00\x00" + b"\x11\x22\x33\x44\x55\x66\x77\x88" + b"\x00"
origin = bytes([0, 0]) + (40001 ^ 0xffff).to_bytes(2, "big") + bytes(b ^ 0xff for b in bytes([192, 0, 2, 23]))
add(IP(src="192.0.2.23", dst="198.51.100.23") / UDP(sport=40001, dport=3544) / Raw(auth) /
    IPv6(src="fe80::ffff:ffff:fffe", dst="ff02::2", hlim=255) / ICMPv6ND_RS())
add(IP(src="198.51.100.23", dst="192.0.2.23") / UDP(sport=3544, dport=40001) / Raw(auth + origin) /
    IPv6(src="fe80::8000:f227:bec9:1c81", dst="fe80::ffff:ffff:fffe", hlim=255) / ICMPv6ND_RA())
# The client (Teredo address 2001:0:c633:6417:8000:63bf:3fff:fdd2) then
# talks to an IPv6 server through a relay (198.51.100.24), bare IPv6 in
# UDP between ports neither of which is 3544; a bubble comes first.
tcli = "2001:0:c633:6417:8000:63bf:3fff:fdd2"
add(IP(src="192.0.2.23", dst="198.51.100.24") / UDP(sport=40001, dport=52000) / IPv6(src=tcli, dst="2001:db8:203::80", nh=59))
for up, inner in tcp_conversation(tcli, "2001:db8:203::80", 50443, 443, IPv6):
    if up:
        add(IP(src="192.0.2.23", dst="198.51.100.24") / UDP(sport=40001, dport=52000) / inner)
    else:
        add(IP(src="198.51.100.24", dst="192.0.2.23") / UDP(sport=52000, dport=40001) / inner)

# VXLAN-GPE (192.0.2.25 and 198.51.100.25, port 4790): IPv4, IPv6 and
# Ethernet next protocols.
for i, (up, inner) in enumerate(tcp_conversation("10.205.0.2", "10.205.1.9", 49300, 445)):
    s, d = ("192.0.2.25", "198.51.100.25") if up else ("198.51.100.25", "192.0.2.25")
    add(IP(src=s, dst=d) / UDP(sport=49999 - i, dport=4790) / VXLAN(flags="Instance+NextProtocol", NextProtocol=1, vni=205) / inner)
for i, (up, inner) in enumerate(dns_exchange("2001:db8:205::2", "2001:db8:205::53", 40205, IPv6)):
    s, d = ("192.0.2.25", "198.51.100.25") if up else ("198.51.100.25", "192.0.2.25")
    add(IP(src=s, dst=d) / UDP(sport=48000 + i, dport=4790) / VXLAN(flags="Instance+NextProtocol", NextProtocol=2, vni=205) / inner)
for i, (up, inner) in enumerate(dns_exchange("10.205.2.2", "10.205.2.53", 40206)):
    s, d = ("192.0.2.25", "198.51.100.25") if up else ("198.51.100.25", "192.0.2.25")
    add(IP(src=s, dst=d) / UDP(sport=47000 + i, dport=4790) / VXLAN(flags="Instance+NextProtocol", NextProtocol=3, vni=205) /
        Ether(src="02:00:00:00:02:05", dst="02:00:00:00:02:06") / inner)

# PPTP (PAC 192.0.2.26, PNS 198.51.100.26): enhanced GRE with sequence
# numbers, acknowledgments on some; PPP with address and control bytes
# and a full protocol field, or both compressed; an acknowledgment alone
# carries nothing.
for i, (up, inner) in enumerate(tcp_conversation("10.206.0.2", "10.206.1.9", 49400, 3389)):
    s, d = ("192.0.2.26", "198.51.100.26") if up else ("198.51.100.26", "192.0.2.26")
    gre = GRE_PPTP(seqnum_present=1, acknum_present=i % 2, call_id=0x4000 + up, sequence_number=i, ack_number=i)
    ppp = HDLC() / Raw(b"\x00\x21") if i % 3 == 0 else PPP(proto=0x21) if i % 3 == 1 else HDLC() / PPP(proto=0x21)
    add(IP(src=s, dst=d) / gre / ppp / inner)
add(IP(src="192.0.2.26", dst="198.51.100.26") / GRE_PPTP(acknum_present=1, call_id=0x4001, ack_number=9))

# L2TPv2 (LAC 192.0.2.27, LNS 198.51.100.27, port 1701 both ways): data
# messages plain, with length and sequence numbers, and with an offset;
# a zero-length control acknowledgment carries nothing.
for i, (up, inner) in enumerate(tcp_conversation("10.207.0.2", "10.207.1.9", 49500, 22)):
    s, d = ("192.0.2.27", "198.51.100.27") if up else ("198.51.100.27", "192.0.2.27")
    hdr = ["", "length+sequence", "offset"][i % 3]
    l2 = L2TP(hdr=hdr, tunnel_id=7, session_id=9, ns=i, nr=i, offset=2) if hdr else L2TP(tunnel_id=7, session_id=9)
    add(IP(src=s, dst=d) / UDP(sport=1701, dport=1701) / l2 / HDLC() / PPP(proto=0x21) / inner)
for up, inner in dns_exchange("2001:db8:207::2", "2001:db8:207::53", 40207, IPv6):
    s, d = ("192.0.2.27", "198.51.100.27") if up else ("198.51.100.27", "192.0.2.27")
    add(IP(src=s, dst=d) / UDP(sport=1701, dport=1701) / L2TP(tunnel_id=7, session_id=9) / HDLC() / PPP(proto=0x57) / inner)
add(IP(src="198.51.100.27", dst="192.0.2.27") / UDP(sport=1701, dport=1701) / L2TP(hdr="control+length+sequence", tunnel_id=7, ns=3, nr=4))

# AYIYA (client 192.0.2.28, PoP 198.51.100.28 port 5072): a 16-byte
# identity, a 20-byte SHA-1 signature, forward, IPv6 inside.
def ayiya(epoch):
    return bytes([0x41, 0x52, 0x11, 41]) + epoch.to_bytes(4, "big") + bytes(range(16)) + bytes(20)
for i, (up, inner) in enumerate(tcp_conversation("2001:db8:208::2", "2001:db8:ffff::80", 49600, 80, IPv6)):
    s, d, sp, dp = ("192.0.2.28", "198.51.100.28", 40028, 5072) if up else ("198.51.100.28", "192.0.2.28", 5072, 40028)
    add(IP(src=s, dst=d) / UDP(sport=sp, dport=dp) / Raw(ayiya(T0 + i)) / inner)

# Ordinary UDP whose payload starts with a 6 nibble and has a Teredo
# prefix where an IPv6 source would be, but whose length is not an IPv6
# packet's: not opened.
add(IP(src="192.0.2.29", dst="198.51.100.29") / UDP(sport=40029, dport=9999) /
    Raw(bytes.fromhex("6000000000ff1140") + bytes.fromhex("20010000") + bytes(60)))

wrpcap(sys.argv[1] if len(sys.argv) > 1 else "encap.pcap", frames)
