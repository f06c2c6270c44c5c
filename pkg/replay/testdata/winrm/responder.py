#!/usr/bin/env python3
"""A small WinRM responder for building test captures: it accepts NTLM
(HTTP Negotiate) with a known password and seals its answers as MS-WSMV
2.2.9.1.1 says, or Basic in clear, and answers the WS-Management shell
actions pywinrm sends (Create, Command, Receive, Signal, Delete) with
valid SOAP. It is no Windows: it exists so a real client (pywinrm, with
its own NTLM implementation, python3-ntlm-auth) can be captured.

Usage: responder.py PORT USER PASSWORD
"""
import base64
import hmac
import hashlib
import http.server
import os
import re
import struct
import sys
import uuid

from ntlm_auth import compute_hash, rc4, session_security

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]
DOMAIN = "CORP"
BOUNDARY = b"--Encrypted Boundary"
PROTO = b"application/HTTP-SPNEGO-session-encrypted"

# MS-NLMP 2.2.2.5 flags the CHALLENGE offers.
F_UNICODE, F_REQ_TARGET, F_SIGN, F_SEAL = 0x1, 0x4, 0x10, 0x20
F_NTLM, F_ALWAYS_SIGN, F_TARGET_DOMAIN = 0x200, 0x8000, 0x10000
F_ESS, F_TARGET_INFO, F_VERSION = 0x80000, 0x800000, 0x2000000
F_128, F_KEY_EXCH, F_56 = 0x20000000, 0x40000000, 0x80000000


def av(id_, val):
    return struct.pack("<HH", id_, len(val)) + val


def challenge_message(client_flags, server_challenge):
    flags = client_flags & (F_UNICODE | F_SIGN | F_SEAL | F_NTLM | F_ALWAYS_SIGN |
                            F_ESS | F_VERSION | F_128 | F_KEY_EXCH | F_56)
    flags |= F_UNICODE | F_REQ_TARGET | F_TARGET_DOMAIN | F_TARGET_INFO | F_NTLM
    target = DOMAIN.encode("utf-16-le")
    ts = struct.pack("<Q", 133000000000000000)
    info = (av(2, DOMAIN.encode("utf-16-le")) + av(1, b"S\x00R\x00V\x00") +
            av(4, b"c\x00o\x00r\x00p\x00") + av(3, b"s\x00r\x00v\x00") +
            av(7, ts) + av(0, b""))
    head = 56
    msg = b"NTLMSSP\x00" + struct.pack("<I", 2)
    msg += struct.pack("<HHI", len(target), len(target), head)
    msg += struct.pack("<I", flags) + server_challenge + b"\x00" * 8
    msg += struct.pack("<HHI", len(info), len(info), head + len(target))
    msg += b"\x0a\x00\x63\x45\x00\x00\x00\x0f"  # version 10.0.17763
    return msg + target + info, flags


def field(msg, at):
    ln, _, off = struct.unpack("<HHI", msg[at:at + 8])
    return msg[off:off + ln]


def accept(auth, server_challenge):
    """Derives the exported session key from an AUTHENTICATE with the
    known password (MS-NLMP 3.3.2, 3.4.5.1): NTLMv2 only."""
    nt = field(auth, 20)
    domain = field(auth, 28).decode("utf-16-le")
    user = field(auth, 36).decode("utf-16-le")
    enc_key = field(auth, 52)
    flags = struct.unpack("<I", auth[60:64])[0]
    owf = compute_hash._ntowfv2(user, PASSWORD, domain)
    proof = hmac.new(owf, server_challenge + nt[16:], hashlib.md5).digest()
    if proof != nt[:16] or user.lower() != USER.split("\\")[-1].lower():
        return None, flags
    base = hmac.new(owf, proof, hashlib.md5).digest()
    key = base
    if flags & F_KEY_EXCH:
        key = rc4.ARC4(base).update(enc_key)
    return session_security.SessionSecurity(flags, key, source="server"), flags


def soap(action, body, relates="uuid:0"):
    return ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
            'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
            'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
            '<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>'
            '<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>'
            '<a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>%s</s:Body></s:Envelope>'
            % (action, uuid.uuid4(), relates, body)).encode()


SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
OUTPUT = {
    "ipconfig": b"\r\nWindows IP Configuration\r\n\r\n   Host Name . . . . . . . . . . . . : SRV\r\n",
    "powershell": b"\r\nHandles  NPM(K)    PM(K)      WS(K)     CPU(s)     Id  SI ProcessName\r\n",
}


def answer(req):
    """The SOAP answer to one request's SOAP."""
    action = re.search(rb"<a:Action[^>]*>([^<]+)</a:Action>", req).group(1).decode()
    mid = re.search(rb"<a:MessageID>([^<]+)</a:MessageID>", req).group(1).decode()
    name = action.rsplit("/", 1)[1]
    if name == "Create":
        sid = str(uuid.uuid4()).upper()
        return soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
                    '<x:ResourceCreated><a:Address>http://srv:5985/wsman</a:Address>'
                    '<a:ReferenceParameters><w:ResourceURI>%s/cmd</w:ResourceURI>'
                    '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>'
                    '</a:ReferenceParameters></x:ResourceCreated>' % (SHELL, sid), mid)
    if name == "Command":
        cmd = re.search(rb"<rsp:Command>([^<]*)</rsp:Command>", req).group(1).decode()
        answer.last = cmd.split()[0].lower() if cmd else ""
        return soap(SHELL + "/CommandResponse",
                    "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>"
                    % str(uuid.uuid4()).upper(), mid)
    if name == "Receive":
        cid = re.search(rb'CommandId="([^"]+)"', req).group(1).decode()
        out = base64.b64encode(OUTPUT.get(answer.last, b"done\r\n")).decode()
        return soap(SHELL + "/ReceiveResponse",
                    '<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="%s">%s</rsp:Stream>'
                    '<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>'
                    '<rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>'
                    '<rsp:CommandState CommandId="%s" State="%s/CommandState/Done">'
                    '<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>'
                    % (cid, out, cid, cid, cid, SHELL), mid)
    if name == "Signal":
        return soap(SHELL + "/SignalResponse", "<rsp:SignalResponse/>", mid)
    if name == "Delete":
        return soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "", mid)
    return soap("http://schemas.xmlsoap.org/ws/2004/08/addressing/fault", "<s:Fault/>", mid)


answer.last = ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    security = None
    chal = None

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", ctype="application/soap+xml;charset=UTF-8", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        auth = self.headers.get("Authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() == "basic":
            user, _, pw = base64.b64decode(tok).decode().partition(":")
            if user != USER or pw != PASSWORD:
                return self.send(401, headers=[("WWW-Authenticate", "Basic")])
            return self.send(200, answer(body))
        if scheme.lower() in ("negotiate", "ntlm") and tok:
            msg = base64.b64decode(tok)
            typ = struct.unpack("<I", msg[8:12])[0]
            if typ == 1:
                Handler.chal = os.urandom(8)
                ch, _ = challenge_message(struct.unpack("<I", msg[12:16])[0], Handler.chal)
                return self.send(401, headers=[("WWW-Authenticate", scheme + " " + base64.b64encode(ch).decode())])
            if typ == 3:
                Handler.security, _ = accept(msg, Handler.chal)
                if Handler.security is None:
                    return self.send(401, headers=[("WWW-Authenticate", "Negotiate")])
        if Handler.security is None:
            return self.send(401, headers=[("WWW-Authenticate", "Negotiate")])
        if not body:
            return self.send(200)
        # An encrypted request: unwrap, answer, wrap the answer.
        part = body.split(BOUNDARY + b"\r\n")[2]
        part = part[len(b"\tContent-Type: application/octet-stream\r\n"):]
        siglen = struct.unpack("<I", part[:4])[0]
        sig, sealed = part[4:4 + siglen], part[4 + siglen:]
        sealed = sealed[:len(sealed) - len(BOUNDARY + b"--\r\n")]
        plain = Handler.security.unwrap(sealed, sig)
        reply = answer(plain)
        sealed, sig = Handler.security.wrap(reply)
        out = (BOUNDARY + b"\r\n\tContent-Type: " + PROTO + b"\r\n"
               b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(reply)).encode() + b"\r\n" +
               BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n" +
               struct.pack("<I", len(sig)) + sig + sealed + BOUNDARY + b"--\r\n")
        self.send(200, out, 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"')


http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.HTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
