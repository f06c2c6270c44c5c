#!/usr/bin/python3
"""WinRM with Kerberos message encryption (MS-WSMV 2.2.9.1,
application/HTTP-Kerberos-session-encrypted) between two MIT GSS-API peers.

    winrm_kerberos.py server ADDR PORT      (KRB5_KTNAME: the service's keytab)
    winrm_kerberos.py client HOST PORT CMD  (KRB5CCNAME: the user's tickets)

The client is pywinrm's Protocol (its envelopes, unmodified) over a
transport that encrypts as pywinrm 0.4 with pyspnego does on Linux:
gss_wrap_iov with a header, the data and padding; the signature is the
header. Debian's pywinrm 0.3 cannot (its pykerberos lacks the WinRM
wrapping), hence this transport. The server answers a shell's Create,
Command, Receive, Signal and Delete with fixed responses, encrypted the
same way; it stands in for Windows' WinRM service.
"""
import base64
import http.client
import http.server
import re
import struct
import sys
import uuid

import gssapi
import gssapi.raw as graw

BOUNDARY = b"Encrypted Boundary"
PROTO = b"application/HTTP-Kerberos-session-encrypted"
KRB5 = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")


def wrap(ctx, msg):
    iov = graw.IOV(graw.IOVBufferType.header, msg, graw.IOVBufferType.padding, std_layout=False)
    graw.wrap_iov(ctx, iov, confidential=True)
    sig, data = iov[0].value, iov[1].value + (iov[2].value or b"")
    body = (b"--" + BOUNDARY + b"\r\n\tContent-Type: " + PROTO + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(msg)).encode() + b"\r\n"
            b"--" + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(sig)) + sig + data + b"--" + BOUNDARY + b"--\r\n")
    ctype = 'multipart/encrypted;protocol="%s";boundary="%s"' % (PROTO.decode(), BOUNDARY.decode())
    return body, ctype


def unwrap(ctx, body):
    part = body.split(b"\tContent-Type: application/octet-stream\r\n", 1)[1]
    part = part[: part.rindex(b"--" + BOUNDARY + b"--")]
    n = struct.unpack("<i", part[:4])[0]
    sig, data = part[4:4 + n], part[4 + n:]
    # MIT opens header and data as one token (RFC 4121's RRC rotation).
    return ctx.unwrap(sig + data).message


SHELL = str(uuid.UUID(int=0x5A1E11)).upper()
COMMAND = str(uuid.UUID(int=0xC0111A4D)).upper()


def answer(req):
    action = re.search(rb"<a:Action[^>]*>([^<]+)</a:Action>", req).group(1).decode()
    rel = re.search(rb"<a:MessageID>([^<]+)</a:MessageID>", req).group(1).decode()
    head = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
            'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
            '<s:Header><a:Action>%sResponse</a:Action><a:MessageID>uuid:%s</a:MessageID>'
            '<a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>' % (action, uuid.uuid4(), rel))
    if action.endswith("/Create"):
        body = ('<x:ResourceCreated><a:ReferenceParameters><w:SelectorSet xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">'
                '<w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
                '<rsp:Shell><rsp:ShellId>%s</rsp:ShellId></rsp:Shell>' % (SHELL, SHELL))
    elif action.endswith("/Command"):
        body = '<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>' % COMMAND
    elif action.endswith("/Receive"):
        out = base64.b64encode(b"krblab\\alice\r\n").decode()
        body = ('<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="%s">%s</rsp:Stream>'
                '<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>'
                '<rsp:CommandState CommandId="%s" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done">'
                '<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>' % (COMMAND, out, COMMAND, COMMAND))
    elif action.endswith("/Signal"):
        body = '<rsp:SignalResponse/>'
    else:
        body = ''
    return (head + body + '</s:Body></s:Envelope>').encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ctx = None

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Kerberos "):
            Handler.ctx = gssapi.SecurityContext(usage="accept", creds=gssapi.Credentials(usage="accept"))
            out = Handler.ctx.step(base64.b64decode(auth[9:]))
            self.send_response(200)
            self.send_header("WWW-Authenticate", "Kerberos " + base64.b64encode(out or b"").decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if Handler.ctx is None or not body:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Kerberos")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        resp, ctype = wrap(Handler.ctx, answer(unwrap(Handler.ctx, body)))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)


class Transport:
    """What pywinrm's Protocol needs of a transport: send_message."""

    def __init__(self, host, port):
        self.conn = http.client.HTTPConnection(host, port)
        self.host = host
        self.ctx = None

    def post(self, body, headers):
        self.conn.request("POST", "/wsman", body=body, headers=headers)
        r = self.conn.getresponse()
        return r, r.read()

    def send_message(self, message):
        if isinstance(message, str):
            message = message.encode("utf-8")
        if self.ctx is None:
            r, _ = self.post(b"", {"Content-Length": "0"})  # 401: Kerberos
            name = gssapi.Name("HTTP@" + self.host, gssapi.NameType.hostbased_service)
            self.ctx = gssapi.SecurityContext(name=name, mech=KRB5, usage="initiate",
                                              flags=gssapi.RequirementFlag.mutual_authentication |
                                              gssapi.RequirementFlag.confidentiality |
                                              gssapi.RequirementFlag.integrity)
            tok = self.ctx.step()
            r, _ = self.post(b"", {"Authorization": "Kerberos " + base64.b64encode(tok).decode(), "Content-Length": "0"})
            self.ctx.step(base64.b64decode(r.getheader("WWW-Authenticate")[9:]))
        body, ctype = wrap(self.ctx, message)
        r, resp = self.post(body, {"Content-Type": ctype})
        return unwrap(self.ctx, resp).decode()


def main():
    if sys.argv[1] == "server":
        http.server.HTTPServer((sys.argv[2], int(sys.argv[3])), Handler).serve_forever()
    from winrm.protocol import Protocol
    host, port, cmd = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    p = Protocol("http://%s:%d/wsman" % (host, port), transport="plaintext", username="x", password="x")
    p.transport = Transport(host, port)
    shell = p.open_shell()
    command = p.run_command(shell, cmd, ["/all"])
    out, err, code = p.get_command_output(shell, command)
    p.cleanup_command(shell, command)
    p.close_shell(shell)
    print(out.decode(), code)


main()
