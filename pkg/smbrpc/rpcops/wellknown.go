package rpcops

// wellKnown names RPC interfaces that rpcops does not decode, so a call on
// one shows the interface's name (and specification) rather than a bare
// UUID: MS-* protocols and a few tools' own interfaces seen in intrusions.
var wellKnown = lazyTable[[16]byte, string]{build: func() map[[16]byte]string {
	m := map[[16]byte]string{}
	for s, n := range map[string]string{
		"7c44d7d4-31d5-424c-bd5e-2b3e1f323d22": "dsaop (MS-DRSR)",
		"6bffd098-a112-3610-9833-012892020162": "browser (MS-BRWSA)",
		"6bffd098-a112-3610-9833-46c3f874532d": "dhcpsrv (MS-DHCPM)",
		"5b821720-f63b-11d0-aac2-00c04fc2aa2e": "dhcpsrv2 (MS-DHCPM)",
		"8fb6d884-2388-11d0-8c35-00c04fda2795": "W32Time (MS-W32T)",
		"f5cc59b4-4264-101a-8c59-08002b2f8426": "frsrpc (MS-FRS1)",
		"897e2e5f-93f3-4376-9c9c-fd2277495c27": "FrsTransport (MS-FRS2)",
		"d049b186-814f-11d1-9a3c-00c04fc9b232": "NtFrsApi (MS-FRS1)",
		"ea0a3165-4834-11d2-a6f8-00c04fa346cc": "fax (MS-FAX)",
		"4da1c422-943d-11d1-acae-00c04fc2aa3f": "trksvr (MS-DLTM)",
		"300f3532-38cc-11d0-a3f0-0020af6b0add": "trkwks (MS-DLTW)",
		"0b6edbfa-4a24-4fc6-8a23-942b1eca65d1": "IRPCAsyncNotify (MS-PAN)",
		"ae33069b-a2a8-46ee-a235-ddfd339be281": "IRPCRemoteObject (MS-PAN)",
		"45f52c28-7f9f-101a-b52b-08002b2efabe": "winsif (MS-RAIW)",
		"811109bf-a4e1-11d1-ab54-00a0c91e9b45": "winsi2 (MS-RAIW)",
		"8f09f000-b7ed-11ce-bbd2-00001a181cad": "dimsvc (MS-RRASM)",
		"20610036-fa22-11cf-9823-00a0c911e5df": "rasrpc (MS-RRASM)",
		"fdb3a030-065f-11d1-bb9b-00a024ea5525": "qmcomm (MS-MQMP)",
		"76d12b80-3467-11d3-91ff-0090272f9ea3": "qmcomm2 (MS-MQMP)",
		"1088a980-eae5-11d0-8d9b-00a02453c337": "qm2qm (MS-MQQP)",
		"12b81e99-f207-4a4c-85d3-77b42f76fd14": "ISeclogon (seclogon)",
		"c8cb7687-e6d3-11d2-a958-00c04f682e16": "DAV RPC (WebClient)",
		"82ad4280-036b-11cf-972c-00aa006887b0": "inetinfo (IIS)",
		"e33c0cc4-0482-101a-bc0c-02608c6ba218": "RpcLocator (MS-RPCL)",
		"d6d70ef0-0e3b-11cb-acc3-08002b1d29c3": "RpcLocator NsiS (MS-RPCL)",
		"2f5f6520-ca46-1067-b319-00dd010662da": "tapsrv (MS-TRP)",
		"4b112204-0e19-11d3-b42b-0000f81feb9f": "ssdpsrv",
		"ccd8c074-d0e5-4a40-92b4-d074faa6ba28": "Witness (MS-SWN)",
		"a4f1db00-ca47-1067-b31f-00dd010662da": "Exchange MAPI (emsmdb)",
		// MS-PLA's other interfaces (1.9); IDataCollectorSet and
		// IDataManager are decoded.
		"03837543-098b-11d8-9414-505054503030": "IFolderAction (MS-PLA)",
		"03837544-098b-11d8-9414-505054503030": "IFolderActionCollection (MS-PLA)",
		"038374ff-098b-11d8-9414-505054503030": "IDataCollector (MS-PLA)",
		"03837506-098b-11d8-9414-505054503030": "IPerformanceCounterDataCollector (MS-PLA)",
		"03837514-098b-11d8-9414-505054503030": "IConfigurationDataCollector (MS-PLA)",
		"03837516-098b-11d8-9414-505054503030": "IAlertDataCollector (MS-PLA)",
		"0383750b-098b-11d8-9414-505054503030": "ITraceDataCollector (MS-PLA)",
		"0383751a-098b-11d8-9414-505054503030": "IApiTracingDataCollector (MS-PLA)",
		"03837512-098b-11d8-9414-505054503030": "ITraceDataProvider (MS-PLA)",
		"0383753a-098b-11d8-9414-505054503030": "ISchedule (MS-PLA)",
		"03837510-098b-11d8-9414-505054503030": "ITraceDataProviderCollection (MS-PLA)",
		"0383753d-098b-11d8-9414-505054503030": "IScheduleCollection (MS-PLA)",
		"03837502-098b-11d8-9414-505054503030": "IDataCollectorCollection (MS-PLA)",
		"03837524-098b-11d8-9414-505054503030": "IDataCollectorSetCollection (MS-PLA)",
		"03837533-098b-11d8-9414-505054503030": "IValueMapItem (MS-PLA)",
		"03837534-098b-11d8-9414-505054503030": "IValueMap (MS-PLA)",
	} {
		m[mustUUID(s)] = n
	}
	return m
}}

// WellKnownName names an interface rpcops does not decode, "" when it is
// not in the table.
func WellKnownName(uuid [16]byte) string { return wellKnown.get()[uuid] }
