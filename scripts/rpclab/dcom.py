"""The DCOM side of the stand-in: activation and MS-WCCE ICertRequestD.

A DCOM client (Windows' certreq, Certipy 5's `req -dcom`) first asks the
activator on TCP 135 (IRemoteSCMActivator::RemoteCreateInstance) for the
CA's certificate-request object; the reply is an activation blob whose
PropsOutInfo carries an OBJREF_STANDARD (OXID, OID, IPID of the interface)
and whose ScmReplyInfo names the object exporter's string bindings (here
"ip[port]" of the DCOM port). The client then binds ICertRequestD on that
port and calls Request with the IPID as the object UUID.

The NDR is built with impacket's structures (they pack as well as unpack),
as MS-DCOM 2.2.22 lays them out.
"""

import logging
import struct

from impacket.dcerpc.v5 import dcomrt
from impacket.dcerpc.v5.dtypes import NULL
from impacket.uuid import string_to_bin

SCM_ACTIVATOR = "000001a0-0000-0000-c000-000000000046"
OBJECT_EXPORTER = "99fcfec4-5260-101b-bbcb-00aa0021347a"
CERT_REQUEST_D = "d99e6e70-fc88-11d0-b498-00a0c90312f3"
CERT_REQUEST_D2 = "5422fd3a-d4b8-4cef-a12e-e87d4ca22e90"

RPC_C_AUTHN_WINNT = 10
RPC_C_AUTHN_LEVEL_PKT_PRIVACY = 6
E_NOINTERFACE = 0x80004002

LOG = logging.getLogger("rpclab.dcom")


def pad4(n):
    return (4 - n % 4) % 4


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


class Exporter:
    """The one object exporter of the lab: its OXID, and the IPIDs it handed out."""

    def __init__(self, ip, port):
        self.ip, self.port = ip, port
        self.oxid = 0x1122334455667788
        self.oid = 0x0102030405060708
        self.ipid_remunknown = string_to_bin("0000a401-0b60-0000-7b16-1c7e3a1b4c5d")
        self.ipids = {}  # IPID bytes -> interface uuid string
        self.next = 0x0c01

    def new_ipid(self, iface):
        ipid = string_to_bin("0000%04x-0b60-0000-7b16-1c7e3a1b4c5d" % self.next)
        self.next += 1
        self.ipids[ipid] = iface
        return ipid

    def dual_string_array(self):
        """The bindings as the 16-bit words of a DUALSTRINGARRAY: one
        ncacn_ip_tcp string binding, then one NTLM security binding."""
        words = [7] + list(struct.unpack("<%dH" % (len(self.addr()) // 2), self.addr())) + [0]
        sec_offset = len(words)
        words += [RPC_C_AUTHN_WINNT, 0xFFFF, 0, 0]
        return words, sec_offset

    def addr(self):
        return ("%s[%d]\x00" % (self.ip, self.port)).encode("utf-16le")


def requested_iid(stub):
    """The IID the activation asks for: the InstantiationInfoData's first
    IID, found as the bytes of a known interface (the lab serves two)."""
    for iface in (CERT_REQUEST_D, CERT_REQUEST_D2):
        if string_to_bin(iface) in stub:
            return iface
    return None


def remote_create_instance(exporter, stub):
    """The reply to IRemoteSCMActivator::RemoteCreateInstance (opnum 4)."""
    iface = requested_iid(stub)
    resp = dcomrt.RemoteCreateInstanceResponse()
    resp["ORPCthat"]["flags"] = 0
    resp["ORPCthat"]["extensions"] = NULL
    if iface is None:
        LOG.info("activation for an interface the lab does not serve")
        resp["ppActProperties"] = NULL
        resp["ErrorCode"] = E_NOINTERFACE
        return resp.getData()
    ipid = exporter.new_ipid(iface)
    LOG.info("activation of %s: IPID %s on %s[%d]", iface, ipid.hex(), exporter.ip, exporter.port)

    words, sec_offset = exporter.dual_string_array()
    packed = struct.pack("<HH", len(words), sec_offset) + struct.pack("<%dH" % len(words), *words)

    objref = dcomrt.OBJREF_STANDARD()
    objref["iid"] = string_to_bin(iface)
    objref["std"]["flags"] = dcomrt.SORF_NOPING
    objref["std"]["cPublicRefs"] = 5
    objref["std"]["oxid"] = exporter.oxid
    objref["std"]["oid"] = exporter.oid
    objref["std"]["ipid"] = ipid
    objref["saResAddr"] = packed
    objref_bytes = objref.getData()

    props = dcomrt.PropsOutInfo()
    props["cIfs"] = 1
    iid = dcomrt.IID()
    iid["Data"] = string_to_bin(iface)
    props["piid"].append(iid)
    hr = dcomrt.HRESULT()
    hr["Data"] = 0
    props["phresults"].append(hr)
    mip = dcomrt.PMInterfacePointer()
    mip["ulCntData"] = len(objref_bytes)
    mip["abData"] = list(objref_bytes)
    props["ppIntfData"].append(mip)

    scm = dcomrt.ScmReplyInfoData()
    scm["pdwReserved"] = 0
    reply = scm["remoteReply"]
    reply["Oxid"] = exporter.oxid
    reply["pdsaOxidBindings"]["wNumEntries"] = len(words)
    reply["pdsaOxidBindings"]["wSecurityOffset"] = sec_offset
    reply["pdsaOxidBindings"]["aStringArray"] = words
    reply["ipidRemUnknown"] = exporter.ipid_remunknown
    reply["authnHint"] = RPC_C_AUTHN_LEVEL_PKT_PRIVACY
    reply["serverVersion"]["MajorVersion"] = 5
    reply["serverVersion"]["MinorVersion"] = 7

    properties = b""
    sizes = []
    for p in (props, scm):
        b = p.getData() + p.getDataReferents()
        b += b"\xfa" * ((8 - len(b) % 8) % 8)
        sizes.append(len(b))
        properties += b

    blob = dcomrt.ACTIVATION_BLOB()
    blob["CustomHeader"]["destCtx"] = 2
    blob["CustomHeader"]["pdwReserved"] = NULL
    for clsid_bytes in (dcomrt.CLSID_PropsOutInfo, dcomrt.CLSID_ScmReplyInfo):
        clsid = dcomrt.CLSID()
        clsid["Data"] = clsid_bytes
        blob["CustomHeader"]["pclsid"].append(clsid)
    for n in sizes:
        d = dcomrt.DWORD()
        d["Data"] = n
        blob["CustomHeader"]["pSizes"].append(d)
    blob["Property"] = properties

    custom = dcomrt.OBJREF_CUSTOM()
    custom["iid"] = dcomrt.IID_IActivationPropertiesOut[:-4]
    custom["clsid"] = dcomrt.CLSID_ActivationPropertiesOut
    custom["pObjectData"] = blob.getData()
    custom["ObjectReferenceSize"] = len(custom["pObjectData"]) + 8
    data = custom.getData()

    resp["ppActProperties"]["ulCntData"] = len(data)
    resp["ppActProperties"]["abData"] = list(data)
    resp["ErrorCode"] = 0
    return resp.getData()


def ndr_wstring_ptr(b, off):
    """A unique pointer to a conformant varying UTF-16 string: (text or None, offset after)."""
    off += pad4(off)
    ptr = u32(b, off)
    off += 4
    if not ptr:
        return None, off
    off += pad4(off)
    actual = u32(b, off + 8)
    s = b[off + 12:off + 12 + 2 * actual].decode("utf-16le", "replace").rstrip("\x00")
    return s, off + 12 + 2 * actual


def orpcthis_end(stub):
    """The offset after an ORPCTHIS without extensions (impacket's and
    Windows' clients send none on these calls)."""
    if u32(stub, 28):
        LOG.info("ORPCTHIS with extensions: not read")
    return 32


def cert_request(stub, two):
    """The arguments of ICertRequestD::Request (opnum 3) or
    ICertRequestD2::Request2 (opnum 6), MS-WCCE 3.2.1.4.2.1 and 3.2.1.4.3.1:
    (ca, attributes, request DER)."""
    off = orpcthis_end(stub)
    if two:
        ca, off = ndr_wstring_ptr(stub, off)
        off += pad4(off)
        off += 4  # dwFlags
        _, off = ndr_wstring_ptr(stub, off)  # pwszSerialNumber
    else:
        off += 4  # dwFlags
        ca, off = ndr_wstring_ptr(stub, off)
    off += pad4(off)
    off += 4  # pdwRequestId
    attrs, off = ndr_wstring_ptr(stub, off)
    off += pad4(off)
    cb, ptr = u32(stub, off), u32(stub, off + 4)
    off += 8
    der = b""
    if ptr:
        n = u32(stub, off)
        der = stub[off + 4:off + 4 + min(n, cb)]
    return ca or "", attrs or "", der
