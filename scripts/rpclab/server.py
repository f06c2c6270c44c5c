#!/usr/bin/env python3
"""A stand-in Windows server for recording real attack tools' DCE/RPC traffic.

It answers just enough for the unmodified tools to send their real requests:
an SMB server (impacket) whose named pipes \\efsrpc, \\lsarpc, \\samr,
\\netlogon, \\lsass, \\cert and \\eventlog carry DCE/RPC to the endpoint below, the
endpoint mapper on TCP 135 and the same endpoint on a dynamic TCP port.

The endpoint accepts binds for MS-EFSR (both UUIDs), MS-EVEN, MS-ICPR, the
endpoint mapper and, for DCOM, the activator and MS-WCCE ICertRequestD(2),
with or without an NTLM auth verifier (it sends an NTLM CHALLENGE and
accepts any AUTHENTICATE), and answers:

  - EFSR calls naming a UNC path: the server "connects" back to that host
    over SMB as its machine account (as an unpatched Windows host does),
    then answers ERROR_BAD_NETPATH (0x35), what PetitPotam expects;
  - MS-EVEN OpenBackupEventLogW/A naming a UNC path (\\\\host\\... or
    \\??\\UNC\\host\\..., as Coercer sends it): the same callback, then
    STATUS_BAD_NETWORK_PATH with a null handle;
  - CertServerRequest: issues a certificate signed by a throw-away CA, with
    the subject and SAN of the request (a CA that allows ESC1 does so);
  - ept_map for ICPR: the dynamic TCP port;
  - RemoteCreateInstance (IRemoteSCMActivator, TCP 135) for ICertRequestD:
    an OBJREF naming the DCOM port (dcom.py); there, ICertRequestD::Request
    and ICertRequestD2::Request2 issue a certificate as CertServerRequest;
  - a sealed request (auth level 6, packet privacy): with --password (the
    lab account's), the server derives the NTLMv2 session keys as a DC
    would, opens the request and seals its reply; without, a fault
    rpc_s_access_denied; the request is on the wire sealed either way.

Only for the lab namespaces that run.sh makes; never on a real network.
"""

import argparse
import calendar
import datetime
import logging
import os
import socket
import socketserver
import struct
import threading
import time

from Cryptodome.Cipher import ARC4
from impacket import ntlm, smbserver
from impacket.dcerpc.v5 import epm
from impacket.smbconnection import SMBConnection
from impacket.uuid import string_to_bin, bin_to_string, uuidtup_to_bin

import dcom

EFSR_LSA = "c681d488-d850-11d0-8c52-00c04fd90f7e"
EFSR = "df1941c5-fe89-4e79-bf10-463657acf44d"
ICPR = "91ae6020-9e3c-11cf-8d7c-00aa00c091be"
EVEN = "82273fdc-e32a-18c3-3f78-827929dc23ea"
EPM = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
NDR = ("8a885d04-1ceb-11c9-9fe8-08002b104860", 2)

ERROR_BAD_NETPATH = 0x35
STATUS_BAD_NETWORK_PATH = 0xC00000BE
RPC_S_ACCESS_DENIED = 0x5
NCA_S_OP_RNG_ERROR = 0x1C010002

LOG = logging.getLogger("rpclab")


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def pad4(n):
    return (4 - n % 4) % 4


def header(ptype, flags, call_id, body_len, auth_len=0):
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\x00\x00\x00",
                       16 + body_len + (auth_len + 8 if auth_len else 0), auth_len, call_id)


def ntlm_challenge(negotiate, server, domain):
    """An NTLM CHALLENGE for the client's NEGOTIATE, as impacket's SMB server builds it."""
    neg = ntlm.NTLMAuthNegotiate()
    neg.fromString(negotiate)
    flags = 0
    for f in (ntlm.NTLMSSP_NEGOTIATE_56, ntlm.NTLMSSP_NEGOTIATE_128, ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH,
              ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY, ntlm.NTLMSSP_NEGOTIATE_UNICODE,
              ntlm.NTLMSSP_NEGOTIATE_SIGN, ntlm.NTLMSSP_NEGOTIATE_SEAL, ntlm.NTLMSSP_NEGOTIATE_ALWAYS_SIGN):
        flags |= neg["flags"] & f
    flags |= (ntlm.NTLMSSP_NEGOTIATE_VERSION | ntlm.NTLMSSP_NEGOTIATE_TARGET_INFO |
              ntlm.NTLMSSP_TARGET_TYPE_DOMAIN | ntlm.NTLMSSP_NEGOTIATE_NTLM | ntlm.NTLMSSP_REQUEST_TARGET)
    av = ntlm.AV_PAIRS()
    av[ntlm.NTLMSSP_AV_HOSTNAME] = server.encode("utf-16le")
    av[ntlm.NTLMSSP_AV_DNS_HOSTNAME] = (server.lower() + "." + domain.lower() + ".local").encode("utf-16le")
    av[ntlm.NTLMSSP_AV_DOMAINNAME] = domain.encode("utf-16le")
    av[ntlm.NTLMSSP_AV_DNS_DOMAINNAME] = (domain.lower() + ".local").encode("utf-16le")
    av[ntlm.NTLMSSP_AV_TIME] = struct.pack("<q", 116444736000000000 + calendar.timegm(time.gmtime()) * 10000000)
    ch = ntlm.NTLMAuthChallenge()
    ch["flags"] = flags
    ch["domain_len"] = ch["domain_max_len"] = len(domain.encode("utf-16le"))
    ch["domain_offset"] = 40 + 16
    ch["challenge"] = os.urandom(8)
    ch["domain_name"] = domain.encode("utf-16le")
    ch["TargetInfoFields_len"] = ch["TargetInfoFields_max_len"] = len(av)
    ch["TargetInfoFields"] = av
    ch["TargetInfoFields_offset"] = 40 + 16 + len(ch["domain_name"])
    ch["Version"] = b"\x0a\x00\x7c\x4f\x00\x00\x00\x0f"  # 10.0.20348, NTLM revision 15
    ch["VersionLen"] = 8
    return ch.getData()


class Lab:
    """What the endpoint needs to know about the lab."""

    def __init__(self, name, domain, tcp_port, ca, password=None, exporter=None):
        self.name, self.domain, self.tcp_port, self.ca = name, domain, tcp_port, ca
        self.password, self.exporter = password, exporter
        self.request_id = 40


class Sealing:
    """The server's side of an NTLMv2 security context (MS-NLMP 3.4): keys
    from the account's password and the client's AUTHENTICATE, one RC4
    stream each way, the server's own sequence number."""

    def __init__(self, authenticate, password):
        a = ntlm.NTLMAuthChallengeResponse()
        a.fromString(authenticate)
        user = a["user_name"].decode("utf-16le")
        domain = a["domain_name"].decode("utf-16le")
        self.flags = a["flags"]
        if len(a["ntlm"]) <= 24:
            raise ValueError("NTLMv1 AUTHENTICATE: the lab derives NTLMv2 keys only")
        key_nt = ntlm.NTOWFv2(user, password, domain)
        base = ntlm.hmac_md5(key_nt, a["ntlm"][:16])
        exported = base
        if self.flags & ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH:
            exported = ARC4.new(base).decrypt(a["session_key"])
        self.client_sign = ntlm.SIGNKEY(self.flags, exported)
        self.server_sign = ntlm.SIGNKEY(self.flags, exported, b"Server")
        self.client_seal = ntlm.SEALKEY(self.flags, exported)
        self.server_seal = ntlm.SEALKEY(self.flags, exported, b"Server")
        self.client_rc4 = ARC4.new(self.client_seal).encrypt
        self.server_rc4 = ARC4.new(self.server_seal).encrypt
        self.client_seq = 0
        self.server_seq = 0
        LOG.info("NTLM keys derived for %s\\%s", domain, user)

    def open(self, data):
        """Decrypts a client's sealed stub (with its auth padding); the
        verifier's checksum follows in the same RC4 stream."""
        plain, _ = ntlm.SEAL(self.flags, self.client_sign, self.client_seal, data, data,
                             self.client_seq, self.client_rc4)
        self.client_seq += 1
        return plain

    def seal(self, pdu_to_sign, data):
        """(sealed data, verifier) for a reply PDU: the signature covers the
        whole plain PDU up to the verifier, as extended session security has it."""
        sealed, sig = ntlm.SEAL(self.flags, self.server_sign, self.server_seal, pdu_to_sign, data,
                                self.server_seq, self.server_rc4)
        self.server_seq += 1
        return sealed, sig.getData()


class RPCHandler(socketserver.BaseRequestHandler):
    """One DCE/RPC connection (a pipe forwarded by the SMB server, or TCP)."""

    lab = None

    def setup(self):
        self.ctx = {}  # context id -> interface uuid string
        self.max_xmit = 4280
        self.frags = {}
        self.sealing = None

    def read_pdu(self):
        hdr = b""
        while len(hdr) < 16:
            b = self.request.recv(16 - len(hdr))
            if not b:
                return None
            hdr += b
        frag = u16(hdr, 8)
        body = b""
        while len(hdr) + len(body) < frag:
            b = self.request.recv(frag - 16 - len(body))
            if not b:
                return None
            body += b
        return hdr + body

    def handle(self):
        while True:
            pdu = self.read_pdu()
            if pdu is None:
                return
            ptype, flags, call_id, auth_len = pdu[2], pdu[3], u32(pdu, 12), u16(pdu, 10)
            auth = None
            end = len(pdu)
            t = len(pdu)
            if auth_len:
                t = len(pdu) - auth_len - 8
                auth = dict(type=pdu[t], level=pdu[t + 1], pad=pdu[t + 2], ctx=u32(pdu, t + 4), value=pdu[t + 8:])
                end = t - pdu[t + 2]
            if ptype in (11, 14):  # bind, alter_context
                self.bind(pdu, ptype, flags, call_id, auth)
            elif ptype == 16:  # auth3: the AUTHENTICATE, accepted as is
                if self.lab.password and auth is not None:
                    self.sealing = Sealing(auth["value"], self.lab.password)
                continue
            elif ptype == 0:
                self.request_pdu(pdu, flags, call_id, auth, end, t)
            else:
                LOG.info("pdu type %d ignored", ptype)

    def bind(self, pdu, ptype, flags, call_id, auth):
        self.max_xmit = min(u16(pdu, 16), 4280)
        n = pdu[24]
        off = 28
        results = b""
        secondary = b""
        for _ in range(n):
            ctx_id, n_ts = u16(pdu, off), pdu[off + 2]
            abstract = bin_to_string(pdu[off + 4:off + 20]).lower()
            syntaxes = [pdu[off + 24 + 20 * i:off + 24 + 20 * i + 20] for i in range(n_ts)]
            off += 24 + 20 * n_ts
            ndr = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
            known = abstract in (EFSR_LSA, EFSR, EVEN, ICPR, EPM, dcom.SCM_ACTIVATOR, dcom.OBJECT_EXPORTER,
                                 dcom.CERT_REQUEST_D, dcom.CERT_REQUEST_D2)
            if known and ndr in syntaxes:
                self.ctx[ctx_id] = abstract
                results += struct.pack("<HH", 0, 0) + ndr
                secondary = self.secondary(abstract)
            else:
                # provider rejection: abstract syntax, or transfer syntax, not supported
                results += struct.pack("<HH", 2, 1 if not known else 2) + b"\x00" * 20
                if known:
                    LOG.info("bind %s without NDR refused", abstract)
                else:
                    LOG.info("bind for unserved interface %s refused", abstract)
        body = struct.pack("<HHI", self.max_xmit, self.max_xmit, 0x12345)
        if ptype == 11:
            sec = secondary + b"\x00" if secondary else b""
            body += struct.pack("<H", len(sec)) + sec
        else:
            body += struct.pack("<H", 0)
        body += b"\x00" * pad4(16 + len(body))
        body += struct.pack("<BBH", n, 0, 0) + results
        auth_value = b""
        trailer = b""
        if auth is not None and auth["value"].startswith(b"NTLMSSP\x00\x01"):
            auth_value = ntlm_challenge(auth["value"], self.lab.name, self.lab.domain)
            p = pad4(16 + len(body))
            body += b"\x00" * p
            trailer = struct.pack("<BBBBI", auth["type"], auth["level"], p, 0, auth["ctx"])
        ack = 12 if ptype == 11 else 15
        out = header(ack, 3, call_id, len(body), len(auth_value)) + body + trailer + auth_value
        self.request.sendall(out)

    def secondary(self, abstract):
        if abstract == EPM:
            return b"135"
        return str(self.request.getsockname()[1]).encode() if self.server.tcp else b"\\PIPE\\" + self.server.pipe.encode()

    def request_pdu(self, pdu, flags, call_id, auth, end, trailer):
        ctx_id, opnum = u16(pdu, 20), u16(pdu, 22)
        start = 40 if flags & 0x80 else 24
        sealed = auth is not None and auth["level"] == 6
        data = pdu[start:end]
        if sealed and self.sealing is not None:
            # The auth padding is sealed with the stub: open both, drop the pad.
            data = self.sealing.open(pdu[start:trailer])[:end - start]
        key = call_id
        if flags & 1:
            self.frags[key] = b""
        self.frags[key] = self.frags.get(key, b"") + data
        if not flags & 2:
            return
        stub = self.frags.pop(key)
        iface = self.ctx.get(ctx_id)
        if sealed and self.sealing is None:
            LOG.info("sealed request %s opnum %d: access denied", iface, opnum)
            return self.fault(call_id, ctx_id, RPC_S_ACCESS_DENIED)
        handler = {EFSR_LSA: efsr, EFSR: efsr, EVEN: even, ICPR: icpr, EPM: epm_call, dcom.SCM_ACTIVATOR: scm_call,
                   dcom.CERT_REQUEST_D: cert_request_d, dcom.CERT_REQUEST_D2: cert_request_d}.get(iface)
        out = handler(self, opnum, stub) if handler else None
        if out is None:
            return self.fault(call_id, ctx_id, NCA_S_OP_RNG_ERROR)
        if isinstance(out, int):
            return self.fault(call_id, ctx_id, out)
        self.respond(call_id, ctx_id, out, auth if sealed else None)

    def fault(self, call_id, ctx_id, status):
        body = struct.pack("<IHBBII", 32, ctx_id, 0, 0, status, 0)
        self.request.sendall(header(3, 3, call_id, len(body)) + body)

    def respond(self, call_id, ctx_id, stub, auth=None):
        # A sealed fragment carries its pad, trailer and 16-byte verifier;
        # fragments other than the last keep 8-byte multiples of stub.
        room = self.max_xmit - 24 - (8 + 16 + 8 if auth else 0)
        room -= room % 8
        off = 0
        while True:
            chunk = stub[off:off + room]
            flags = (1 if off == 0 else 0) | (2 if off + room >= len(stub) else 0)
            body = struct.pack("<IHBB", len(stub) - off, ctx_id, 0, 0) + chunk
            if auth is None:
                self.request.sendall(header(2, flags, call_id, len(body)) + body)
            else:
                p = pad4(len(chunk))
                body += b"\x00" * p
                trailer = struct.pack("<BBBBI", auth["type"], auth["level"], p, 0, auth["ctx"])
                hdr = header(2, flags, call_id, len(body), 16)
                sealed, verifier = self.sealing.seal(hdr + body + trailer, chunk + b"\x00" * p)
                self.request.sendall(hdr + body[:8] + sealed + trailer + verifier)
            off += room
            if off >= len(stub):
                return


def ndr_wstring(b, off):
    """A conformant varying UTF-16 string at off: (text, offset after it)."""
    off += pad4(off)
    actual = u32(b, off + 8)
    s = b[off + 12:off + 12 + 2 * actual].decode("utf-16le", "replace").rstrip("\x00")
    return s, off + 12 + 2 * actual


# The file name is the first argument of every EFSR method the tools call,
# except AddUsersToFileEx (dwFlags, a unique EFS_RPC_BLOB* first).
EFSR_NAMES = {0: "EfsRpcOpenFileRaw", 4: "EfsRpcEncryptFileSrv", 5: "EfsRpcDecryptFileSrv",
              6: "EfsRpcQueryUsersOnFile", 7: "EfsRpcQueryRecoveryAgents", 8: "EfsRpcRemoveUsersFromFile",
              9: "EfsRpcAddUsersToFile", 12: "EfsRpcFileKeyInfo", 13: "EfsRpcDuplicateEncryptionInfoFile",
              15: "EfsRpcAddUsersToFileEx", 16: "EfsRpcFileKeyInfoEx", 21: "EfsRpcEncryptFileExSrv"}


def efsr(h, opnum, stub):
    name = EFSR_NAMES.get(opnum)
    if name is None:
        return None
    # The UNC path the tools pass: the first UTF-16 string starting with \\\\
    # (AddUsersToFileEx puts flags and a blob before it).
    path = ""
    i = stub.find("\\\\".encode("utf-16le"))
    if i >= 0:
        j = i
        while j + 1 < len(stub) and stub[j:j + 2] != b"\x00\x00":
            j += 2
        path = stub[i:j].decode("utf-16le", "replace")
    LOG.info("%s %r", name, path)
    # A host with "@port" is WebDAV, which the WebClient service (not
    # running here) would fetch over HTTP: no SMB callback then.
    if path.startswith("\\\\") and "@" not in path.split("\\")[2]:
        threading.Thread(target=callback, args=(h.lab, path), daemon=True).start()
        time.sleep(0.5)  # a real server answers after its connection attempt
    # Out arguments before the status: a context handle (OpenFileRaw), a
    # null unique pointer (QueryUsersOnFile, QueryRecoveryAgents, FileKeyInfo).
    out = b""
    if opnum == 0:
        out = b"\x00" * 20
    elif opnum in (6, 7, 12):
        out = b"\x00" * 4
    return out + struct.pack("<I", ERROR_BAD_NETPATH)


def unc_host(path):
    """The server of \\\\host\\... or \\??\\UNC\\host\\... ("" otherwise)."""
    if path[:8].upper() == "\\??\\UNC\\":
        path = "\\\\" + path[8:]
    if not path.startswith("\\\\"):
        return ""
    return path[2:].split("\\")[0]


def even(h, opnum, stub):
    """MS-EVEN: only OpenBackupEventLogW (9) and A (16), the coercion."""
    if opnum not in (9, 16):
        return None
    # UNCServerName: a unique pointer to one character; then the
    # RPC_UNICODE_STRING (A: RPC_STRING) BackupFileName, its buffer deferred.
    off = 4 + (4 if u32(stub, 0) else 0)
    off += 8  # Length, MaximumLength, pointer
    off += pad4(off)
    actual = u32(stub, off + 8)
    raw = stub[off + 12:off + 12 + (2 if opnum == 9 else 1) * actual]
    path = raw.decode("utf-16le" if opnum == 9 else "latin-1", "replace").rstrip("\x00")
    LOG.info("%s %r", "OpenBackupEventLogW" if opnum == 9 else "OpenBackupEventLogA", path)
    host = unc_host(path)
    if host and "@" not in host:
        threading.Thread(target=callback, args=(h.lab, "\\\\" + host), daemon=True).start()
        time.sleep(0.5)
    return b"\x00" * 20 + struct.pack("<I", STATUS_BAD_NETWORK_PATH)


def callback(lab, path):
    """Connect to the host a coercion names, as the machine account does."""
    host = path[2:].split("\\")[0]
    LOG.info("callback to %s", host)
    try:
        c = SMBConnection(host, host, sess_port=445, timeout=5)
        c.login(lab.name + "$", "lab-machine-password", lab.domain)
        c.close()
    except Exception as e:  # the listener may refuse or drop us: what a relay does
        LOG.info("callback to %s: %s", host, e)


def icpr(h, opnum, stub):
    if opnum != 0:
        return None
    off = 4
    if u32(stub, off):  # pwszAuthority
        ca, off = ndr_wstring(stub, off + 4)
    else:
        ca, off = "", off + 4
    off += pad4(off)
    off += 4  # pdwRequestId
    blobs = []
    sizes = []
    for _ in range(2):
        off += pad4(off)
        cb, ptr = u32(stub, off), u32(stub, off + 4)
        sizes.append(cb if ptr else None)
        off += 8
    for cb in sizes:
        if cb is None:
            blobs.append(b"")
            continue
        off += pad4(off)
        n = u32(stub, off)
        blobs.append(stub[off + 4:off + 4 + n])
        off += 4 + n
    attrs, csr_der = blobs
    LOG.info("CertServerRequest ca %r attributes %r csr %d bytes", ca, attrs.decode("utf-16le", "replace"), len(csr_der))
    h.lab.request_id += 1
    rid = h.lab.request_id
    if not csr_der:
        return struct.pack("<II", rid, 2) + cert_blobs((b"", b"", b"")) + struct.pack("<I", 0)
    der = issue(h, csr_der)
    # pctbCert (the certificate chain) is sent as the certificate itself.
    return struct.pack("<II", rid, 3) + cert_blobs((der, der, "Issued\x00".encode("utf-16le"))) + struct.pack("<I", 0)


def cert_blobs(blobs):
    """Out CERTTRANSBLOBs, each a top-level parameter: cb and a unique
    pointer, then its bytes before the next parameter (the referents of a
    parameter's embedded pointers end with that parameter)."""
    out = b""
    for i, blob in enumerate(blobs):
        out += b"\x00" * pad4(len(out))
        if not blob:
            out += struct.pack("<II", 0, 0)
            continue
        out += struct.pack("<III", len(blob), 0x20000 + 4 * i, len(blob)) + blob
    return out + b"\x00" * pad4(len(out))


def issue(h, csr_der):
    """A certificate for the request, signed by the lab CA, with the
    request's subject and extensions (the SAN it asks for): DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    csr = x509.load_der_x509_csr(csr_der)
    key, cacert = h.lab.ca
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(cacert.subject)
         .public_key(csr.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365)))
    for ext in csr.extensions:
        b = b.add_extension(ext.value, ext.critical)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def scm_call(h, opnum, stub):
    if opnum != 4:  # RemoteCreateInstance
        return None
    return dcom.remote_create_instance(h.lab.exporter, stub)


def cert_request_d(h, opnum, stub):
    """ICertRequestD::Request (3) and ICertRequestD2::Request2 (6): ORPCTHAT,
    the request id, the disposition, three CERTTRANSBLOBs, the HRESULT."""
    if opnum not in (3, 6):
        return None
    ca, attrs, der = dcom.cert_request(stub, opnum == 6)
    LOG.info("ICertRequestD opnum %d ca %r attributes %r csr %d bytes", opnum, ca, attrs, len(der))
    h.lab.request_id += 1
    out = struct.pack("<II", 0, 0)  # ORPCTHAT: flags, no extensions
    out += struct.pack("<I", h.lab.request_id)
    if not der:
        return out + struct.pack("<I", 2) + cert_blobs((b"", b"", b"")) + struct.pack("<I", 0)
    cert = issue(h, der)
    return out + struct.pack("<I", 3) + cert_blobs((cert, cert, "Issued\x00".encode("utf-16le"))) + struct.pack("<I", 0)


def epm_call(h, opnum, stub):
    if opnum != 3:  # ept_map
        return None
    tower = epm.EPMTower()
    iface = epm.EPMRPCInterface()
    iface["InterfaceUUID"] = string_to_bin(ICPR)
    iface["MajorVersion"], iface["MinorVersion"] = 0, 0
    data = epm.EPMRPCDataRepresentation()
    data["DataRepUuid"] = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
    data["MajorVersion"], data["MinorVersion"] = 2, 0
    proto = epm.EPMProtocolIdentifier()
    proto["ProtIdentifier"] = 0x0B
    port = epm.EPMPortAddr()
    port["IpPort"] = h.lab.tcp_port
    host = epm.EPMHostAddr()
    host["Ip4addr"] = socket.inet_aton(h.request.getsockname()[0])
    tower["NumberOfFloors"] = 5
    tower["Floors"] = iface.getData() + data.getData() + proto.getData() + port.getData() + host.getData()
    t = tower.getData()
    out = b"\x00" * 20  # entry handle
    out += struct.pack("<I", 1)  # num_towers
    out += struct.pack("<III", 1, 0, 1)  # max, offset, actual of ITowers
    out += struct.pack("<I", 0x20000)  # the tower pointer
    out += struct.pack("<II", len(t), len(t)) + t
    out += b"\x00" * pad4(len(out))
    return out + struct.pack("<I", 0)


class PipeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, pipe, tcp):
        self.pipe, self.tcp = pipe, tcp
        super().__init__(addr, RPCHandler)


def make_ca(name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subj = x509.Name([x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "local"),
                      x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "corp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--name", default="DC01")
    ap.add_argument("--domain", default="CORP")
    ap.add_argument("--ca", default="CORP-DC01-CA")
    ap.add_argument("--tcp-port", type=int, default=49670)
    ap.add_argument("--dcom-port", type=int, default=49673)
    ap.add_argument("--password", help="the lab account's password: open and answer sealed calls")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lab = Lab(args.name, args.domain, args.tcp_port, make_ca(args.ca), args.password,
              dcom.Exporter(args.ip, args.dcom_port))
    RPCHandler.lab = lab

    servers = []
    for port, pipe in ((135, "epmapper"), (args.tcp_port, ""), (args.dcom_port, "")):
        s = PipeServer((args.ip, port), pipe, True)
        servers.append(s)
    pipes = {}
    for pipe in ("efsrpc", "lsarpc", "samr", "netlogon", "lsass", "cert", "eventlog"):
        s = PipeServer(("127.0.0.1", 0), pipe, False)
        servers.append(s)
        pipes[pipe] = s.server_address
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()

    smb = smbserver.SimpleSMBServer(listenAddress=args.ip, listenPort=445)
    smb.setSMB2Support(True)
    smb.setSMBChallenge("")
    for pipe, addr in pipes.items():
        smb.registerNamedPipe(pipe, addr)
    LOG.info("serving on %s", args.ip)
    smb.start()


if __name__ == "__main__":
    main()
