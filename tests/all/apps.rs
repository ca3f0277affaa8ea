//! Every example app, run as a component by the real host, on realistic inputs with
//! exact expected outputs.

use serde_json::json;

use crate::common::{fixture, output_of};

#[tokio::test]
async fn ioc_extract_on_an_analyst_paste() {
    let text = fixture("analyst-paste.txt");
    let output = output_of("ioc-extract", "extract", json!({ "text": text })).await;
    assert_eq!(
        output,
        json!({
            "urls": [
                "https://update-check.cloudfront-cdn.xyz/gate.php?id=77",
                "http://185.220.101.47:8080/ldr"
            ],
            "emails": ["billing@invoice-portal.top", "soc@example.org"],
            "ipv4": ["185.220.101.47", "45.137.21.9", "10.20.30.40"],
            "ipv6": ["2a03:b0c0:3:d0::1a51:c001"],
            "domains": [
                "update-check.cloudfront-cdn.xyz",
                "invoice-portal.top",
                "example.org",
                "ws-0231.corp.example.com"
            ],
            "sha256": ["3f1c2a9b7e8d4c6f5a0b1e2d3c4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"],
            "sha1": ["a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"],
            "md5": ["5d41402abc4b2a76b9719d911017c592"],
            "cves": ["CVE-2023-23397", "CVE-2017-11882"],
            "count": 17
        })
    );
}

#[tokio::test]
async fn ioc_extract_defangs_and_refangs() {
    let output = output_of(
        "ioc-extract",
        "defang",
        json!({ "text": "beacon to https://evil.example.com/a.php from 198.51.100.23" }),
    )
    .await;
    assert_eq!(
        output,
        json!({ "text": "beacon to hxxps[://]evil[.]example[.]com/a.php from 198[.]51[.]100[.]23" })
    );
    let output = output_of("ioc-extract", "refang", output).await;
    assert_eq!(output, json!({ "text": "beacon to https://evil.example.com/a.php from 198.51.100.23" }));
}
