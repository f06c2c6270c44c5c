#!/usr/bin/env python3
"""Writes one small capture per link type nwhealth reads besides Ethernet:
802.11 behind radiotap, PPI, Prism and AVS headers and bare; PPP, PPP in
HDLC framing, Cisco HDLC and PPPoE without Ethernet; pf and netfilter
logs; the raw-IP link types old files carry (12, 14); and pcapng files
whose interfaces have different link types. The IP packets are built with
scapy (Debian's python3-scapy 2.5), an encoder independent of nwhealth's;
the link headers are laid out here field by field where scapy has none.
Each link type has its own addresses (10.<60+i>.0.2 and .80, i its place in
LINKS), so a query for one host finds one file's packets. Every file holds
an HTTP exchange over TCP and a DNS one over UDP, plus frames that carry no
IP packet: for Wi-Fi a beacon, an ACK, a QoS null frame, a protected data
frame, and an A-MSDU of two subframes. Deterministic: run it again and the
bytes are the same.

    python3 testdata/links/gen.py testdata/links
"""
import os
import struct
import sys
import zlib

from scapy.all import IP, IPv6, TCP, UDP, Raw
from scapy.layers.dot11 import Dot11, Dot11QoS, Dot11Beacon, Dot11Elt, RadioTap, PrismHeader
from scapy.layers.l2 import LLC, SNAP
from scapy.layers.pflog import PFLog

T0 = 1767225600  # 2026-01-01T00:00:00Z
AP, STA, GW = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0a:03"


def conversation(i, v6=False):
    """The IP packets of link type i: an HTTP exchange over TCP, a DNS one
    over UDP, each with its direction (True: client to server)."""
    if v6:
        cli, srv, ipcls = "2001:db8:%x::2" % (60 + i), "2001:db8:%x::80" % (60 + i), IPv6
    else:
        cli, srv, ipcls = "10.%d.0.2" % (60 + i), "10.%d.0.80" % (60 + i), IP
    c2s, s2c = dict(src=cli, dst=srv), dict(src=srv, dst=cli)
    sport, dport = 49000 + i, 80
    req = b"GET /links HTTP/1.1\r\nHost: example\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    return [
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="S", seq=1000)),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="SA", seq=5000, ack=1001)),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=5001)),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=5001) / req),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="PA", seq=5001, ack=1001 + len(req)) / resp),
        (True, ipcls(**c2s) / TCP(sport=sport, dport=dport, flags="FA", seq=1001 + len(req), ack=5001 + len(resp))),
        (False, ipcls(**s2c) / TCP(sport=dport, dport=sport, flags="FA", seq=5001 + len(resp), ack=1002 + len(req))),
        (True, ipcls(**c2s) / UDP(sport=40000 + i, dport=53) / q),
        (False, ipcls(**s2c) / UDP(sport=53, dport=40000 + i) / (q[:2] + b"\x81\x80" + q[4:])),
    ]


def snap(pkt):
    et = 0x86DD if pkt.version == 6 else 0x0800
    return bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=et)) + bytes(pkt)


def dot11_data(up, body, qos=False, four=False, order=False, amsdu=False):
    """An 802.11 data frame between a station and its access point: to the
    DS going up, from it coming down; four addresses for a mesh or WDS
    link; QoS data with HT control when order is set."""
    fc = 0x01 if up else 0x02
    if four:
        fc = 0x03
    if order:
        fc |= 0x80
    a1, a2, a3 = (AP, STA, GW) if up else (STA, AP, GW)
    hdr = Dot11(type=2, subtype=8 if qos else 0, FCfield=fc, addr1=a1, addr2=a2, addr3=a3, SC=16)
    if four:
        hdr.addr4 = "02:00:00:00:0a:04"
    b = bytes(hdr)
    if qos:
        b += bytes([0x80 if amsdu else 0x00, 0x00])
        if order:
            b += b"\x00\x00\x00\x00"  # HT control
    return b + body


def wifi_frames(i):
    """802.11 frames of link type i: data frames holding the conversation
    in every header shape, then frames that hold no IP packet."""
    frames = []
    for n, (up, pkt) in enumerate(conversation(i)):
        shape = n % 4
        frames.append(dot11_data(up, snap(pkt), qos=shape >= 1, four=shape == 2, order=shape == 3))
    frames.append(bytes(Dot11(type=0, subtype=8, addr1="ff:ff:ff:ff:ff:ff", addr2=AP, addr3=AP) /
                        Dot11Beacon(timestamp=1, beacon_interval=100, cap=0x0401) / Dot11Elt(ID=0, info=b"nwh")))
    frames.append(bytes(Dot11(type=1, subtype=13, addr1=STA)))  # ACK
    frames.append(bytes(Dot11(type=2, subtype=12, FCfield=0x01, addr1=AP, addr2=STA, addr3=AP)) + b"\x00\x00")  # QoS null
    # A protected data frame: CCMP header, ciphertext, MIC.
    frames.append(bytes(Dot11(type=2, subtype=8, FCfield=0x41, addr1=AP, addr2=STA, addr3=GW)) + b"\x00\x00" +
                  bytes.fromhex("0100002000000000") + bytes(range(48)) + b"\x11" * 8)
    # An A-MSDU of two subframes (DA, SA, length, LLC/SNAP and the packet,
    # padded to 4 bytes): the first is what nwhealth reads.
    a = IP(src="10.%d.0.2" % (60 + i), dst="10.%d.0.81" % (60 + i)) / UDP(sport=40100 + i, dport=5353) / b"first"
    bsub = IP(src="10.%d.0.2" % (60 + i), dst="10.%d.0.82" % (60 + i)) / UDP(sport=40200 + i, dport=5353) / b"second!"
    body = b""
    for k, pkt in enumerate((a, bsub)):
        m = snap(pkt)
        sub = bytes.fromhex(GW.replace(":", "")) + bytes.fromhex(STA.replace(":", "")) + struct.pack(">H", len(m)) + m
        if k == 0:
            sub += b"\x00" * (-len(sub) % 4)
        body += sub
    frames.append(dot11_data(True, body, qos=True, amsdu=True))
    return frames


def radiotap(frame, n):
    """Radiotap with TSFT, Flags and channel; every second frame has its
    FCS (the Flags field says so)."""
    fcs = n % 2 == 1
    hdr = RadioTap(present="TSFT+Flags+Channel", mac_timestamp=1000 + n, Flags="FCS" if fcs else 0,
                   ChannelFrequency=2437, ChannelFlags="2GHz+CCK")
    b = bytes(hdr) + frame
    if fcs:
        b += struct.pack("<I", zlib.crc32(frame) & 0xFFFFFFFF)
    return b


def ppi(frame, n):
    """PPI with an 802.11-Common field; every second frame has its FCS."""
    fcs = n % 2 == 1
    common = struct.pack("<QHHHHBBbb", 1000 + n, 0x0001 if fcs else 0, 0, 2437, 0x00A0, 0, 0, -40, -90)
    fields = struct.pack("<HH", 2, len(common)) + common
    b = struct.pack("<BBHI", 0, 0, 8 + len(fields), 105) + fields + frame
    if fcs:
        b += struct.pack("<I", zlib.crc32(frame) & 0xFFFFFFFF)
    return b


def prism(frame, n):
    return bytes(PrismHeader(msgcode=0x44, len=144, dev="wlan0mon")) + frame


def avs(frame, n):
    # AVS capture header version 1: version, length, MAC time, host time,
    # PHY type, channel, data rate, antenna, priority, SSI type, signal,
    # noise, preamble, encoding (64 bytes, big-endian).
    return struct.pack(">IIQQIIIIIIiiII", 0x80211001, 64, 1000 + n, 2000 + n, 4, 6, 540, 0, 0, 1, -40, -90, 1, 1) + frame


def ppp_frames(i, framing):
    """PPP frames: IPv4 and IPv6 packets and an LCP echo request. framing
    is "" (link type 9 without address and control), "hdlc" (ff 03)."""
    pre = b"\xff\x03" if framing == "hdlc" else b""
    out = []
    for _, pkt in conversation(i) + conversation(i, v6=True)[-2:]:
        proto = 0x0057 if pkt.version == 6 else 0x0021
        out.append(pre + struct.pack(">H", proto) + bytes(pkt))
    out.append(pre + bytes.fromhex("c02109010008000000aa"))  # LCP echo request
    return out


def chdlc_frames(i):
    out = [bytes([0x0F, 0x00]) + struct.pack(">H", 0x86DD if p.version == 6 else 0x0800) + bytes(p)
           for _, p in conversation(i) + conversation(i, v6=True)[-2:]]
    out.append(bytes.fromhex("8f008035") + b"\x00" * 16)  # SLARP-like keepalive: not IP
    return out


def pppoe_frames(i):
    out = []
    for _, pkt in conversation(i) + conversation(i, v6=True)[-2:]:
        payload = struct.pack(">H", 0x0057 if pkt.version == 6 else 0x0021) + bytes(pkt)
        out.append(struct.pack(">BBHH", 0x11, 0, 0x0042, len(payload)) + payload)
    lcp = bytes.fromhex("c02109010008000000aa")
    out.append(struct.pack(">BBHH", 0x11, 0, 0x0042, len(lcp)) + lcp)
    return out


def pflog_frames(i):
    """pf logs: the IPv4 conversation logged by an OpenBSD host, the IPv6
    one with OpenBSD's AF_INET6 (24)."""
    out = []
    for up, pkt in conversation(i) + conversation(i, v6=True)[-2:]:
        af = 24 if pkt.version == 6 else 2
        out.append(bytes(PFLog(addrfamily=af, action=0, reason=0, iface="em0", ruleset="", rulenumber=3,
                               direction=1 if up else 2)) + bytes(pkt))
    return out


def tlv(typ, value):
    # NFLOG TLVs are in the logging host's byte order (little-endian here)
    # and padded to 4 bytes.
    b = struct.pack("<HH", 4 + len(value), typ) + value
    return b + b"\x00" * (-len(b) % 4)


def nflog_frames(i):
    """netfilter logs: packet header, prefix and timestamp TLVs before the
    payload TLV; IPv6 packets with family AF_INET6 (10)."""
    out = []
    for n, (_, pkt) in enumerate(conversation(i) + conversation(i, v6=True)[-2:]):
        fam = 10 if pkt.version == 6 else 2
        hwproto = 0x86DD if fam == 10 else 0x0800
        rec = struct.pack(">BBH", fam, 0, 7)
        rec += tlv(1, struct.pack(">HBB", hwproto, 1, 0))  # NFULA_PACKET_HDR: protocol, hook
        rec += tlv(10, b"nwhealth-links\x00")  # NFULA_PREFIX
        rec += tlv(3, struct.pack(">QQ", T0, n))  # NFULA_TIMESTAMP
        rec += tlv(9, bytes(pkt))  # NFULA_PAYLOAD
        out.append(rec)
    # A record without a payload TLV (a netlink message cut short).
    out.append(struct.pack(">BBH", 2, 0, 7) + tlv(1, struct.pack(">HBB", 0x0800, 1, 0)))
    return out


def raw_frames(i):
    return [bytes(p) for _, p in conversation(i) + conversation(i, v6=True)[-2:]]


def wifi(header):
    def build(i):
        return [header(f, n) for n, f in enumerate(wifi_frames(i))]
    return build


# name, link type, frames of link type i.
LINKS = [
    ("radiotap", 127, wifi(radiotap)),
    ("ieee802_11", 105, lambda i: wifi_frames(i)),
    ("ppi", 192, wifi(ppi)),
    ("prism", 119, wifi(prism)),
    ("avs", 163, wifi(avs)),
    ("ppp", 9, lambda i: ppp_frames(i, "")),
    ("ppp_hdlc", 50, lambda i: ppp_frames(i, "hdlc")),
    ("chdlc", 104, chdlc_frames),
    ("pppoe", 51, pppoe_frames),
    ("pflog", 117, pflog_frames),
    ("nflog", 239, nflog_frames),
    ("raw12", 12, raw_frames),
    ("raw14", 14, raw_frames),
]


def write_pcap(path, linktype, frames):
    """A pcap file (microseconds, little-endian), one millisecond a frame."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for n, f in enumerate(frames):
        out += struct.pack("<IIII", T0 + n // 1000, (n % 1000) * 1000, len(f), len(f)) + f
    with open(path, "wb") as fh:
        fh.write(out)


def pcapng(path, ifaces, packets):
    """A pcapng file (written here: one section, interfaces with their link
    types, enhanced packet blocks in microseconds)."""
    def block(typ, body):
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", typ, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt in ifaces:
        out += block(1, struct.pack("<HHI", lt, 0, 262144))
    for n, (iface, data) in enumerate(packets):
        ts = (T0 + n // 1000) * 1000000 + (n % 1000) * 1000
        out += block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
    with open(path, "wb") as f:
        f.write(out)


def main(outdir):
    for i, (name, lt, build) in enumerate(LINKS):
        write_pcap(os.path.join(outdir, name + ".pcap"), lt, build(i))
    # Interfaces of three link types in one file: radiotap, NFLOG and
    # Ethernet, the packets interleaved. The addresses are link type
    # 20's, 21's and 22's.
    eth = [bytes.fromhex("020000000b02020000000b01") + struct.pack(">H", 0x0800) + bytes(p) for _, p in conversation(22)]
    groups = [[(0, f) for f in wifi(radiotap)(20)], [(1, f) for f in nflog_frames(21)], [(2, f) for f in eth]]
    mixed = []
    while any(groups):
        for g in groups:
            if g:
                mixed.append(g.pop(0))
    pcapng(os.path.join(outdir, "mixed.pcapng"), [127, 239, 1], mixed)
    # An interface of a link type nwhealth does not read (USER0, 147)
    # beside an Ethernet one; and a pcap file of that type.
    pcapng(os.path.join(outdir, "unsupported.pcapng"), [1, 147],
           [(0, eth[0]), (1, b"\x01\x02\x03\x04"), (0, eth[1]), (1, b"\x05\x06")])
    write_pcap(os.path.join(outdir, "unsupported.pcap"), 147, [b"\x01\x02\x03\x04"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
