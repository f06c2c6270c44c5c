#!/usr/bin/env python3
"""An icmpsh look-alike (not icmpsh itself): an implant that polls its
controller with ICMP echo requests and a controller that answers with
echo replies carrying commands; the implant returns each command's output
in the payload of its next requests. Raw sockets, as icmpsh's Windows
slave and Python master use them. The implant's "shell" is a fixed table
of made-up answers, so a capture holds nothing of the machine it ran on.

  icmpsh_like.py master IMPLANT_ADDR   (kernel echo replies off: the
                                        controller answers itself)
  icmpsh_like.py slave CONTROLLER_ADDR POLLS DELAY_S JITTER
"""
import os
import random
import select
import socket
import struct
import sys
import time

ECHO_REPLY, ECHO_REQUEST = 0, 8
CHUNK = 512  # bytes of output per request, as icmpsh's default buffer

# The commands the controller hands out, at the poll they are sent with.
COMMANDS = {4: b"whoami", 9: b"dir C:\\Users\\lab\\Documents", 16: b"type notes.txt", 23: b"ipconfig"}


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def packet(typ, ident, seq, data):
    hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    return struct.pack("!BBHHH", typ, 0, checksum(hdr + data), ident, seq) + data


def parse(buf):
    ihl = (buf[0] & 0x0F) * 4
    typ, _, _, ident, seq = struct.unpack("!BBHHH", buf[ihl:ihl + 8])
    return typ, ident, seq, buf[ihl + 8:]


def answer(cmd):
    rnd = random.Random(cmd)
    if cmd == b"whoami":
        return b"lab-pc7\\lab\r\n"
    if cmd.startswith(b"dir"):
        lines = [b" Directory of C:\\Users\\lab\\Documents", b""]
        for i in range(24):
            lines.append(b"03/02/2026  %02d:%02d    %9d report-%03d.docx" % (8 + i % 10, rnd.randrange(60), rnd.randrange(10**4, 10**7), i))
        return b"\r\n".join(lines) + b"\r\n"
    if cmd.startswith(b"type"):
        words = [b"quarterly", b"numbers", b"vpn", b"password", b"server", b"backup", b"share", b"meeting"]
        return b"\r\n".join(b" ".join(rnd.choice(words) for _ in range(9)) for _ in range(60)) + b"\r\n"
    if cmd == b"ipconfig":
        return b"Ethernet adapter Ethernet0:\r\n   IPv4 Address. . . . . : 10.42.0.2\r\n   Subnet Mask . . . . . : 255.255.255.0\r\n   Default Gateway . . . : 10.42.0.1\r\n"
    return b"'%s' is not recognized as an internal or external command\r\n" % cmd


def master(implant):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    polls = 0
    while True:
        buf, (addr, _) = s.recvfrom(65535)
        typ, ident, seq, data = parse(buf)
        if addr != implant or typ != ECHO_REQUEST:
            continue
        # A poll without output is a check-in: the next command, if any.
        cmd = b""
        if not data:
            polls += 1
            cmd = COMMANDS.get(polls, b"")
        s.sendto(packet(ECHO_REPLY, ident, seq, cmd), (addr, 0))


def slave(controller, polls, delay, jitter):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident, seq = os.getpid() & 0xFFFF, 0
    rnd = random.Random(42)

    def exchange(data):
        nonlocal seq
        seq = (seq + 1) & 0xFFFF
        s.sendto(packet(ECHO_REQUEST, ident, seq, data), (controller, 0))
        end = time.time() + 2
        while time.time() < end:
            r, _, _ = select.select([s], [], [], end - time.time())
            if not r:
                break
            buf, (addr, _) = s.recvfrom(65535)
            typ, i, q, payload = parse(buf)
            if addr == controller and typ == ECHO_REPLY and i == ident and q == seq:
                return payload
        return b""

    for _ in range(polls):
        cmd = exchange(b"")
        if cmd:
            out = answer(cmd)
            for off in range(0, len(out), CHUNK):
                exchange(out[off:off + CHUNK])
                time.sleep(0.05)
        time.sleep(delay * (1 + jitter * (2 * rnd.random() - 1)))


if __name__ == "__main__":
    if sys.argv[1] == "master":
        master(sys.argv[2])
    else:
        slave(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
