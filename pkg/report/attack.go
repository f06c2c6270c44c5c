package report

import "strings"

// technique is an ATT&CK technique as the report names it.
type technique struct {
	Name   string
	Tactic string // ATT&CK tactic short name (kill-chain phase)
}

// techniques names the ATT&CK ids hunt and replay give (enterprise
// matrix). An id missing here is still reported, by id alone.
var techniques = map[string]technique{
	"T1071":     {"Application Layer Protocol", "command-and-control"},
	"T1071.001": {"Application Layer Protocol: Web Protocols", "command-and-control"},
	"T1071.002": {"Application Layer Protocol: File Transfer Protocols", "command-and-control"},
	"T1071.004": {"Application Layer Protocol: DNS", "command-and-control"},
	"T1090.001": {"Proxy: Internal Proxy", "command-and-control"},
	"T1572":     {"Protocol Tunneling", "command-and-control"},
	"T1573":     {"Encrypted Channel", "command-and-control"},
	"T1573.002": {"Encrypted Channel: Asymmetric Cryptography", "command-and-control"},
	"T1571":     {"Non-Standard Port", "command-and-control"},
	"T1021.001": {"Remote Services: Remote Desktop Protocol", "lateral-movement"},
	"T1021.002": {"Remote Services: SMB/Windows Admin Shares", "lateral-movement"},
	"T1021.003": {"Remote Services: Distributed Component Object Model", "lateral-movement"},
	"T1021.004": {"Remote Services: SSH", "lateral-movement"},
	"T1021.006": {"Remote Services: Windows Remote Management", "lateral-movement"},
	"T1570":     {"Lateral Tool Transfer", "lateral-movement"},
	"T1210":     {"Exploitation of Remote Services", "lateral-movement"},
	"T1569.002": {"System Services: Service Execution", "execution"},
	"T1047":     {"Windows Management Instrumentation", "execution"},
	"T1059.001": {"Command and Scripting Interpreter: PowerShell", "execution"},
	"T1059.003": {"Command and Scripting Interpreter: Windows Command Shell", "execution"},
	"T1053.005": {"Scheduled Task/Job: Scheduled Task", "execution"},
	"T1543.003": {"Create or Modify System Process: Windows Service", "persistence"},
	"T1546.003": {"Event Triggered Execution: Windows Management Instrumentation Event Subscription", "persistence"},
	"T1546.012": {"Event Triggered Execution: Image File Execution Options Injection", "persistence"},
	"T1547.001": {"Boot or Logon Autostart Execution: Registry Run Keys / Startup Folder", "persistence"},
	"T1547.004": {"Boot or Logon Autostart Execution: Winlogon Helper DLL", "persistence"},
	"T1547.005": {"Boot or Logon Autostart Execution: Security Support Provider", "persistence"},
	"T1098":     {"Account Manipulation", "persistence"},
	"T1003.002": {"OS Credential Dumping: Security Account Manager", "credential-access"},
	"T1003.001": {"OS Credential Dumping: LSASS Memory", "credential-access"},
	"T1003.003": {"OS Credential Dumping: NTDS", "credential-access"},
	"T1003.004": {"OS Credential Dumping: LSA Secrets", "credential-access"},
	"T1003.006": {"OS Credential Dumping: DCSync", "credential-access"},
	"T1555":     {"Credentials from Password Stores", "credential-access"},
	"T1555.003": {"Credentials from Password Stores: Credentials from Web Browsers", "credential-access"},
	"T1555.004": {"Credentials from Password Stores: Windows Credential Manager", "credential-access"},
	"T1187":     {"Forced Authentication", "credential-access"},
	"T1484.001": {"Domain or Tenant Policy Modification: Group Policy Modification", "defense-evasion"},
	"T1087.002": {"Account Discovery: Domain Account", "discovery"},
	"T1069.002": {"Permission Groups Discovery: Domain Groups", "discovery"},
	"T1135":     {"Network Share Discovery", "discovery"},
	"T1049":     {"System Network Connections Discovery", "discovery"},
	"T1018":     {"Remote System Discovery", "discovery"},
	"T1012":     {"Query Registry", "discovery"},
	"T1046":     {"Network Service Discovery", "discovery"},
	"T1201":     {"Password Policy Discovery", "discovery"},
	"T1005":     {"Data from Local System", "collection"},
	"T1039":     {"Data from Network Shared Drive", "collection"},
	"T1112":     {"Modify Registry", "defense-evasion"},
	"T1562.001": {"Impair Defenses: Disable or Modify Tools", "defense-evasion"},
	"T1562.004": {"Impair Defenses: Disable or Modify System Firewall", "defense-evasion"},
	"T1518.001": {"Software Discovery: Security Software Discovery", "discovery"},
	"T1105":     {"Ingress Tool Transfer", "command-and-control"},
	"T1070.001": {"Indicator Removal: Clear Windows Event Logs", "defense-evasion"},
	"T1207":     {"Rogue Domain Controller", "defense-evasion"},
	"T1134.005": {"Access Token Manipulation: SID-History Injection", "defense-evasion"},
	"T1529":     {"System Shutdown/Reboot", "impact"},
	"T1033":     {"System Owner/User Discovery", "discovery"},
	"T1057":     {"Process Discovery", "discovery"},
	"T1087.003": {"Account Discovery: Email Account", "discovery"},
	"T1563.002": {"Remote Service Session Hijacking: RDP Hijacking", "lateral-movement"},
	"T1557":     {"Adversary-in-the-Middle", "credential-access"},
}

// TechniqueName names an ATT&CK id ("" when unknown).
func TechniqueName(id string) string { return techniques[id].Name }

// TechniqueURL is the id's page on attack.mitre.org.
func TechniqueURL(id string) string {
	return "https://attack.mitre.org/techniques/" + strings.ReplaceAll(id, ".", "/") + "/"
}
