#!/usr/bin/env python3
"""Judge an sslyze JSON scan of corestream's TLS listener (CI): no SSL 2/3, no TLS 1.0/1.1,
only forward-secret AEAD suites on TLS 1.2, no compression, no insecure renegotiation, none
of the classic implementation flaws. Exits 1 listing every failure. Usage:
    sslyze --json_out=scan.json 127.0.0.1:PORT && .ci/tls-lint.py scan.json
"""
import json
import sys


def main(path):
    scan = json.load(open(path))
    results = scan["server_scan_results"]
    if not results or results[0].get("scan_status") != "COMPLETED":
        sys.exit(f"tls-lint: the scan did not complete: {results}")
    r = results[0]["scan_result"]
    bad = []

    def result(name):
        entry = r.get(name) or {}
        if entry.get("status") != "COMPLETED":
            bad.append(f"{name}: scan {entry.get('status')}: {entry.get('error_reason')}")
            return {}
        return entry["result"]

    for old in ["ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"]:
        accepted = result(f"{old}_cipher_suites").get("accepted_cipher_suites", [])
        if accepted:
            bad.append(f"{old} accepted: {[s['cipher_suite']['name'] for s in accepted]}")
    for version in ["tls_1_2", "tls_1_3"]:
        accepted = result(f"{version}_cipher_suites").get("accepted_cipher_suites", [])
        if not accepted:
            bad.append(f"{version} not offered")
        for s in accepted:
            name = s["cipher_suite"]["name"]
            aead = "GCM" in name or "CHACHA20_POLY1305" in name
            fs = version == "tls_1_3" or "ECDHE" in name
            weak = any(w in name for w in ["NULL", "EXPORT", "RC4", "DES", "MD5", "anon", "CBC"])
            if not aead or not fs or weak:
                bad.append(f"{version} weak suite accepted: {name}")
    if result("tls_compression").get("supports_compression"):
        bad.append("TLS compression enabled (CRIME)")
    reneg = result("session_renegotiation")
    if reneg.get("is_vulnerable_to_client_renegotiation_dos"):
        bad.append("client-initiated renegotiation accepted")
    if reneg.get("supports_secure_renegotiation") is False:
        bad.append("insecure renegotiation")
    if result("heartbleed").get("is_vulnerable_to_heartbleed"):
        bad.append("heartbleed")
    if result("openssl_ccs_injection").get("is_vulnerable_to_ccs_injection"):
        bad.append("CCS injection")
    robot = result("robot").get("robot_result", "")
    if "VULNERABLE" in robot and "NOT_VULNERABLE" not in robot:
        bad.append(f"ROBOT: {robot}")
    if result("tls_1_3_early_data").get("supports_early_data"):
        bad.append("0-RTT early data accepted (replayable)")
    if not result("tls_fallback_scsv").get("supports_fallback_scsv"):
        bad.append("no TLS_FALLBACK_SCSV downgrade protection")
    if bad:
        print("tls-lint: FAILED")
        for b in bad:
            print("  -", b)
        sys.exit(1)
    print("tls-lint: OK (TLS 1.3 and 1.2 only, forward-secret AEAD suites, no compression, "
          "no client renegotiation, no 0-RTT, not vulnerable to heartbleed/CCS/ROBOT)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scan.json")
