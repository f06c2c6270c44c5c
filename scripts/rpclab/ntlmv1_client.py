#!/usr/bin/env python3
"""Lab client: one sealed (packet privacy) ICPR CertServerRequest over
ncacn_ip_tcp, authenticated with NTLMv1 by impacket, with extended session
security ("ess") or without it ("noess": the flag is taken out of the
NEGOTIATE, as an old client would). The template names the variant, so a
decoder that opened the stub shows which one it read.

    run.sh OUT.pcap /usr/bin/python3 ntlmv1_client.py ess|noess

The account and password are the lab's (testdata SOURCES.md)."""
import sys
from impacket import ntlm
from impacket.dcerpc.v5 import transport, epm, rpcrt
from impacket.dcerpc.v5.ndr import NDRCALL, NDRSTRUCT, NDRPOINTER, NDRUniConformantArray
from impacket.dcerpc.v5.dtypes import DWORD, LPWSTR, ULONG, BYTE
from impacket.uuid import uuidtup_to_bin

ntlm.USE_NTLMv2 = False
if sys.argv[1] == "noess":
    orig = ntlm.getNTLMSSPType1
    def t1(*a, **k):
        m = orig(*a, **k)
        m["flags"] &= ~ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
        return m
    ntlm.getNTLMSSPType1 = t1

ICPR = uuidtup_to_bin(("91ae6020-9e3c-11cf-8d7c-00aa00c091be", "0.0"))

class BYTE_ARRAY(NDRUniConformantArray):
    item = "c"
class PBYTE_ARRAY(NDRPOINTER):
    referent = (("Data", BYTE_ARRAY),)
class CERTTRANSBLOB(NDRSTRUCT):
    structure = (("cb", ULONG), ("pb", PBYTE_ARRAY))
class CertServerRequest(NDRCALL):
    opnum = 0
    structure = (("dwFlags", DWORD), ("pwszAuthority", LPWSTR), ("pdwRequestId", DWORD),
                 ("pctbAttribs", CERTTRANSBLOB), ("pctbRequest", CERTTRANSBLOB))

binding = epm.hept_map("10.0.0.2", ICPR, protocol="ncacn_ip_tcp")
t = transport.DCERPCTransportFactory(binding)
t.set_credentials("alice", "Summer2026!", "CORP", "", "")
dce = t.get_dce_rpc()
dce.set_auth_level(rpcrt.RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
dce.connect()
dce.bind(ICPR)
attrs = "CertificateTemplate:NTLMv1%s\n\x00" % sys.argv[1]
req = CertServerRequest()
req["dwFlags"] = 0
req["pwszAuthority"] = "CORP-DC01-CA\x00"
req["pdwRequestId"] = 0
req["pctbAttribs"]["cb"] = len(attrs.encode("utf-16le"))
req["pctbAttribs"]["pb"] = attrs.encode("utf-16le")
csr = b"\x30\x03\x02\x01\x00"
req["pctbRequest"]["cb"] = len(csr)
req["pctbRequest"]["pb"] = csr
try:
    dce.request(req)
except Exception as e:
    print("request:", e)
