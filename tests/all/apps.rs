//! Every example app, run as a component by the real host, on realistic inputs with
//! exact expected outputs.

use std::sync::Arc;

use serde_json::json;
use wasp_runtime::host::{Call, CompileLimits, Host, HostConfig, Limits, Registry, Settings};
use wasp_runtime::trace::{FailureKind, StepReport};

use crate::common::{example_app, fixture, invoke, load, output_of};

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
    assert_eq!(
        output,
        json!({ "text": "beacon to https://evil.example.com/a.php from 198.51.100.23" })
    );
}

/// The report of `action` of app `name` on `input`, with settings `config`.
async fn run_with(
    name: &str,
    action: &str,
    input: serde_json::Value,
    config: &[(&str, String)],
) -> StepReport {
    let app = load(example_app(name)).await;
    let settings = config
        .iter()
        .fold(Settings::new(), |settings, (key, value)| {
            settings.with(*key, value.clone())
        });
    let call = Call {
        settings: Arc::new(settings),
        ..Call::new(action, input.to_string())
    };
    invoke(&app, call).await
}

#[tokio::test]
async fn email_parse_on_a_phishing_message() {
    let mut output = output_of(
        "email-parse",
        "parse",
        json!({ "raw": fixture("phishing.eml") }),
    )
    .await;
    let headers = output.as_object_mut().unwrap().remove("headers").unwrap();
    assert_eq!(headers.as_array().unwrap().len(), 17);
    assert_eq!(
        headers[0],
        json!({"name": "Return-Path", "value": "<bounce+8841-jdoe=contoso.com@mailer.bulk-notify.ru>"})
    );
    let body = output.as_object_mut().unwrap().remove("text_body").unwrap();
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("Dear Jane,\n\nYour Microsoft 365 password"),
        "{body}"
    );
    assert_eq!(
        output,
        json!({
            "subject": "\u{26a0} Action required: Your Microsoft 365 password expires today",
            "from": {"name": "Microsoft 365", "address": "no-reply@micros0ft-support.com"},
            "to": [{"name": "Jane Doe", "address": "j.doe@contoso.com"}],
            "cc": [{"name": null, "address": "it-helpdesk@contoso.com"}],
            "reply_to": {"name": "M365 Support Desk", "address": "support-desk@m365-helpcenter.net"},
            "return_path": "bounce+8841-jdoe=contoso.com@mailer.bulk-notify.ru",
            "date": "2024-05-14T11:11:50+02:00",
            "message_id": "20240514091150.8841.a7f3c2@micros0ft-support.com",
            "mismatches": {
                "reply_to_address": true,
                "reply_to_domain": true,
                "return_path_address": true,
                "return_path_domain": true,
                "findings": [
                    "Reply-To `support-desk@m365-helpcenter.net` is on domain `m365-helpcenter.net`, not the From domain `micros0ft-support.com`",
                    "Return-Path `bounce+8841-jdoe=contoso.com@mailer.bulk-notify.ru` is on domain `mailer.bulk-notify.ru`, not the From domain `micros0ft-support.com`"
                ]
            },
            "received": [
                {"from": "mail.micros0ft-support.com", "by": "mx1.contoso.com", "with": "ESMTPS",
                 "ip": "185.220.101.47", "date": "2024-05-14T09:12:03Z"},
                {"from": "webmail.bulk-notify.ru", "by": "mail.micros0ft-support.com", "with": "ESMTPSA",
                 "ip": "45.142.212.100", "date": "2024-05-14T11:11:58+02:00"},
                {"from": "127.0.0.1", "by": "webmail.bulk-notify.ru", "with": "SMTP",
                 "ip": "127.0.0.1", "date": "2024-05-14T12:11:52+03:00"}
            ],
            "authentication": {"spf": "fail", "dkim": "none", "dmarc": "fail"},
            "urls": [
                "https://login.microsoftonline.com@m365-verify.top/owa/auth.php?user=j.doe%40contoso.com&id=8841",
                "https://login.microsoftonline.com/common/reset",
                "https://privacy.microsoft.com/en-us/privacystatement",
                "https://m365-verify.top/t/open.gif?id=8841"
            ],
            "deceptive_links": [{
                "text": "https://login.microsoftonline.com/common/reset",
                "href": "https://login.microsoftonline.com@m365-verify.top/owa/auth.php?user=j.doe%40contoso.com&id=8841"
            }],
            "attachments": [{
                "name": "Invoice_8841.html",
                "content_type": "text/html",
                "size": 804,
                // computed independently: Python's email module + hashlib on the decoded part
                "sha256": "f2ee667d98c2bdae9e03167ba5e260711faf40caf9f59e2fbd3c424334964f93"
            }]
        })
    );
}

#[tokio::test]
async fn ip_classify_every_category_and_configured_lists() {
    let lists = (
        "lists",
        json!({"corp": ["10.0.0.0/8", "fd12::/16"], "vpn": ["100.64.0.0/10"]}).to_string(),
    );
    let cases = [
        (
            "10.1.2.3",
            "private",
            "private-use (RFC 1918)",
            json!(["corp"]),
        ),
        (
            "100.64.1.1",
            "cgnat",
            "shared address space for carrier-grade NAT (RFC 6598)",
            json!(["vpn"]),
        ),
        (
            "169.254.10.1",
            "link_local",
            "link-local (RFC 3927)",
            json!([]),
        ),
        (
            "224.0.0.251",
            "multicast",
            "multicast (RFC 5771)",
            json!([]),
        ),
        (
            "192.0.2.10",
            "reserved",
            "documentation (RFC 5737)",
            json!([]),
        ),
        ("8.8.8.8", "public", "globally routable", json!([])),
        (
            "fd12::1",
            "private",
            "unique local (RFC 4193)",
            json!(["corp"]),
        ),
        (
            "fe80::1",
            "link_local",
            "link-local unicast (RFC 4291)",
            json!([]),
        ),
        (
            "::ffff:192.168.1.5",
            "private",
            "private-use (RFC 1918)",
            json!([]),
        ),
        (
            "2606:4700::1111",
            "public",
            "global unicast (RFC 4291)",
            json!([]),
        ),
    ];
    for (ip, category, detail, in_lists) in cases {
        let report = run_with(
            "ip-classify",
            "classify",
            json!({ "ip": ip }),
            std::slice::from_ref(&lists),
        )
        .await;
        let output = report
            .output
            .unwrap_or_else(|| panic!("{ip}: {:?}", report.error));
        assert_eq!(
            (
                output["category"].as_str(),
                output["detail"].as_str(),
                &output["lists"]
            ),
            (Some(category), Some(detail), &in_lists),
            "{ip}"
        );
        assert_eq!(output["public"], json!(category == "public"), "{ip}");
    }
}

#[tokio::test]
async fn indicator_lookup_against_an_offline_feed() {
    let feed = ("feed", fixture("feed.json"));
    let lookup = |indicator: &'static str| {
        let feed = feed.clone();
        async move {
            let report = run_with(
                "indicator-lookup",
                "lookup",
                json!({ "indicator": indicator }),
                &[feed],
            )
            .await;
            report
                .output
                .unwrap_or_else(|| panic!("{indicator}: {:?}", report.error))
        }
    };
    assert_eq!(
        lookup("mail.micros0ft-support.com").await,
        json!({"indicator": "mail.micros0ft-support.com", "type": "domain", "verdict": "malicious", "score": 90,
               "tags": ["brand-impersonation", "phishing"], "sources": ["phishtank"],
               "matches": ["micros0ft-support.com"]})
    );
    assert_eq!(
        lookup("185.220.101.47").await,
        json!({"indicator": "185.220.101.47", "type": "ip", "verdict": "malicious", "score": 85,
               "tags": ["phishing-infra", "tor-exit"], "sources": ["abuse.ch", "tor-project"],
               "matches": ["185.220.101.0/24", "185.220.101.47"]})
    );
    assert_eq!(lookup("185.220.101.9").await["verdict"], "suspicious");
    assert_eq!(
        lookup("F2EE667D98C2BDAE9E03167BA5E260711FAF40CAF9F59E2FBD3C424334964F93").await["verdict"],
        "malicious"
    );
    assert_eq!(lookup("mx1.contoso.com").await["verdict"], "benign");
    assert_eq!(
        lookup("8.8.8.8").await,
        json!({"indicator": "8.8.8.8", "type": "ip", "verdict": "unknown", "score": 0,
               "tags": [], "sources": [], "matches": []})
    );

    let report = run_with(
        "indicator-lookup",
        "lookup",
        json!({ "indicator": "x.com" }),
        &[],
    )
    .await;
    let error = report.error.unwrap();
    assert_eq!(error.code.as_deref(), Some("misconfigured"));
    assert_eq!(
        error.message,
        "the asset has no setting `feed` (the threat-intel feed)"
    );
}

#[tokio::test]
async fn transform_shapes_a_siem_alert() {
    let alert = json!({"alert": {"id": "SIEM-7781", "severity": "high", "hosts": [
        {"name": "ws-0231", "ip": "10.20.30.40", "users": ["j.doe"]},
        {"name": "ws-0977", "ip": "10.20.31.7", "users": ["a.smith", "j.doe"]}
    ]}});
    let run =
        |action: &'static str, input: serde_json::Value| output_of("transform", action, input);
    assert_eq!(
        run(
            "select",
            json!({"data": alert, "path": "$.alert.hosts[*].ip"})
        )
        .await,
        json!({"values": ["10.20.30.40", "10.20.31.7"]})
    );
    assert_eq!(
        run("reshape", json!({"data": alert, "fields": {"id": "$.alert.id", "users": "$..users[*]"}, "many": ["users"]})).await,
        json!({"id": "SIEM-7781", "users": ["j.doe", "a.smith", "j.doe"]})
    );
    assert_eq!(
        run(
            "count",
            json!({"items": [{"u": "j.doe"}, {"u": "a.smith"}, {"u": "j.doe"}], "by": "$.u"})
        )
        .await,
        json!({"total": 3, "counts": {"a.smith": 1, "j.doe": 2}, "missing": 0})
    );
    assert_eq!(
        run("dedupe", json!({"items": ["a", "b", "a", 1, 1]})).await,
        json!({"items": ["a", "b", 1], "removed": 2})
    );
    assert_eq!(
        run("flatten", json!({"data": {"a": {"b": [1, {"c": 2}]}}})).await,
        json!({"a.b.0": 1, "a.b.1.c": 2})
    );
    assert_eq!(
        run(
            "join",
            json!({"items": ["10.0.0.1", "10.0.0.2", 3], "separator": " OR "})
        )
        .await,
        json!({"text": "10.0.0.1 OR 10.0.0.2 OR 3"})
    );
    let report = run_with(
        "transform",
        "select",
        json!({"data": {}, "path": "$[?"}),
        &[],
    )
    .await;
    assert_eq!(
        report.error.unwrap().message,
        "`path` `$[?` is not a valid JSONPath: at position 3, in long-hand segment, parser error"
    );
}

#[tokio::test]
async fn operators_take_pathways() {
    let route = |app: &'static str, action: &'static str, input: serde_json::Value| async move {
        let report = run_with(app, action, input, &[]).await;
        (
            report.pathway,
            report.output,
            report.error.map(|e| e.message),
        )
    };
    let (pathway, output, _) = route(
        "if-else",
        "evaluate",
        json!({"left": [12, 85, 40], "op": "any_gte", "right": 70}),
    )
    .await;
    assert_eq!(pathway.as_deref(), Some("true"));
    assert_eq!(
        output.unwrap()["detail"],
        "any of 3 values >= 70 is true (1 passed)"
    );
    let (pathway, ..) = route(
        "if-else",
        "evaluate",
        json!({"left": "phishing", "op": "in", "right": ["malware", "spam"]}),
    )
    .await;
    assert_eq!(pathway.as_deref(), Some("false"));
    let (pathway, ..) = route(
        "if-else",
        "evaluate",
        json!({"left": "Invoice_8841.html", "op": "matches", "right": "(?i)\\.(html?|js|iso)$"}),
    )
    .await;
    assert_eq!(pathway.as_deref(), Some("true"));
    let (pathway, _, error) = route(
        "if-else",
        "evaluate",
        json!({"left": "abc", "op": "<", "right": 5}),
    )
    .await;
    assert_eq!(
        (pathway, error.as_deref()),
        (
            None,
            Some("cannot compare a string `\"abc\"` with a number `5` using `<`")
        )
    );

    let cases = json!({"critical": ["critical", "high"], "triage": "medium"});
    let (pathway, output, _) =
        route("switch", "route", json!({"value": "high", "cases": cases})).await;
    assert_eq!(
        (pathway.as_deref(), output),
        (
            Some("critical"),
            Some(json!({"matched": true, "pathway": "critical", "value": "high"}))
        )
    );
    let (pathway, ..) = route("switch", "route", json!({"value": "low", "cases": cases})).await;
    assert_eq!(pathway.as_deref(), Some("default"));
}

#[tokio::test]
async fn chaos_spins_sleeps_and_fails_as_asked() {
    let report = run_with("chaos", "spin", json!({"ms": 20}), &[]).await;
    let output = report.output.expect("spin ends after its time");
    assert!(output["elapsed_ms"].as_u64().unwrap() >= 20, "{output}");
    assert!(output["iterations"].as_u64().unwrap() > 0, "{output}");

    let report = run_with("chaos", "sleep", json!({"ms": 20}), &[]).await;
    let output = report.output.expect("sleep ends after its time");
    assert!(output["elapsed_ms"].as_u64().unwrap() >= 20, "{output}");

    let report = run_with(
        "chaos",
        "fail",
        json!({"code": "rate_limited", "message": "slow down", "retryable": true}),
        &[],
    )
    .await;
    let error = report.error.unwrap();
    assert_eq!(
        (
            error.kind,
            error.code.as_deref(),
            error.message.as_str(),
            error.retryable
        ),
        (
            FailureKind::AppError,
            Some("rate_limited"),
            "slow down",
            true
        )
    );

    // Spinning forever ends at the step's deadline, classified as a timeout.
    let app = load(example_app("chaos")).await;
    let call = Call {
        limits: Limits {
            timeout: std::time::Duration::from_millis(50),
            ..Limits::default()
        },
        ..Call::new("spin", "{}".to_owned())
    };
    let report = invoke(&app, call).await;
    assert_eq!(report.error.unwrap().kind, FailureKind::Timeout);
}

/// The apps directory and the component cache (issue 21, item 11): two files that
/// claim one name are both refused, each naming the other.
#[tokio::test]
async fn two_files_claiming_one_name_are_both_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("http-request.wasm");
    let evil = dir.path().join("0-evil.wasm");
    std::fs::copy(example_app("http-request"), &real).unwrap();
    std::fs::copy(example_app("http-request"), &evil).unwrap();
    std::fs::copy(
        example_app("ioc-extract"),
        dir.path().join("ioc-extract.wasm"),
    )
    .unwrap();

    let registry = Registry::scan(&crate::common::HOST, dir.path())
        .await
        .unwrap();
    assert!(
        registry.get("http-request").is_none(),
        "a contested name is not served"
    );
    assert_eq!(
        registry.claimants("http-request"),
        Some(&[evil.clone(), real.clone()][..])
    );
    assert!(registry.get("ioc-extract").is_some(), "the others are");
    let problems: Vec<(std::path::PathBuf, String)> = registry.problems().to_vec();
    assert_eq!(
        problems,
        vec![
            (
                evil.clone(),
                format!(
                    "describes itself as `http-request`, as `{}` does: no file claiming \
                     `http-request` is used until only one does",
                    real.display()
                )
            ),
            (
                real.clone(),
                format!(
                    "describes itself as `http-request`, as `{}` does: no file claiming \
                     `http-request` is used until only one does",
                    evil.display()
                )
            ),
        ]
    );
}

/// Issue 21, item 11: a compiled entry copied over another app's entry ran the other
/// app's code. The entry names the component it was compiled from, so it is refused
/// and the app recompiled.
#[tokio::test]
async fn a_compiled_entry_copied_over_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..HostConfig::default()
    };
    let first = Host::new(config()).unwrap();
    let classify = first.load(&example_app("ip-classify")).await.unwrap();
    let extract = first.load(&example_app("ioc-extract")).await.unwrap();
    let entry = |hash: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(hash) && name.ends_with(".cwasm")
            })
            .unwrap_or_else(|| panic!("no compiled entry for {hash}"))
    };
    std::fs::copy(entry(&classify.hash), entry(&extract.hash)).unwrap();

    let second = Host::new(config()).unwrap();
    let reloaded = second.load(&example_app("ioc-extract")).await.unwrap();
    let report = second
        .invoke(
            &reloaded,
            Call::new("extract", json!({"text": "see 10.1.2[.]3"}).to_string()),
        )
        .await
        .unwrap();
    assert_eq!(
        report.output.as_ref().map(|o| &o["ipv4"]),
        Some(&json!(["10.1.2.3"])),
        "ioc-extract's own code ran: {report:?}"
    );
    assert_ne!(
        std::fs::read(entry(&extract.hash)).unwrap(),
        std::fs::read(entry(&classify.hash)).unwrap(),
        "the swapped entry was replaced"
    );
}

/// A component with one core module whose one function keeps `locals` i64 locals live
/// across a loop, each updated from another in every iteration, `rounds` times over:
/// the shape that took cranelift 11.5 s at 650 KB and more than 7 minutes at 1.5 MB
/// (issue 21, item 9).
fn live_locals_component(locals: u32, rounds: u32) -> Vec<u8> {
    use wasm_encoder::{
        BlockType, CodeSection, Component, Function, FunctionSection, Instruction, Module,
        ModuleSection, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut function = Function::new([(locals, ValType::I64)]);
    function.instruction(&Instruction::Loop(BlockType::Empty));
    for round in 0..rounds {
        for i in 0..locals {
            let other = (i * 7 + round + 1) % locals;
            function
                .instruction(&Instruction::LocalGet(i))
                .instruction(&Instruction::LocalGet(other))
                .instruction(&Instruction::I64Add)
                .instruction(&Instruction::LocalSet(i));
        }
    }
    // Loop while local 0 is zero.
    function
        .instruction(&Instruction::LocalGet(0))
        .instruction(&Instruction::I64Eqz)
        .instruction(&Instruction::BrIf(0))
        .instruction(&Instruction::End)
        .instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&function);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

/// Issue 21, item 9: a function too large, with too many locals, or with too many
/// locals for its size (the shape that took the compiler minutes) is refused before
/// anything compiles, the error naming the file and the bound; the other apps of the
/// directory load.
#[tokio::test]
async fn a_component_past_the_compile_bounds_is_refused_naming_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let large = dir.path().join("large.wasm");
    std::fs::write(&large, live_locals_component(2_000, 60)).unwrap();
    let locals = dir.path().join("locals.wasm");
    std::fs::write(&locals, live_locals_component(20_000, 1)).unwrap();
    // 300 live locals over 418 KB of code: 8 s of compilation on a 2-core machine.
    let complex = dir.path().join("complex.wasm");
    std::fs::write(&complex, live_locals_component(300, 160)).unwrap();
    std::fs::copy(
        example_app("ioc-extract"),
        dir.path().join("ioc-extract.wasm"),
    )
    .unwrap();

    let registry = Registry::scan(&crate::common::HOST, dir.path())
        .await
        .unwrap();
    assert!(registry.get("ioc-extract").is_some());
    let problem = |path: &std::path::Path| {
        registry
            .problems()
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, problem)| problem.clone())
            .unwrap_or_else(|| panic!("{} was not refused", path.display()))
    };
    let too_large = problem(&large);
    assert!(
        too_large.starts_with(&format!(
            "`{}` is refused: its function 0 ",
            large.display()
        )) && too_large.ends_with("of code, over the 1 MiB bound on one function"),
        "{too_large}"
    );
    assert_eq!(
        problem(&locals),
        format!(
            "`{}` is refused: its function 0 (counting the functions of all its modules \
             from 0) declares 20000 locals, over the bound of 10000 locals in one function",
            locals.display()
        )
    );
    assert_eq!(
        problem(&complex),
        format!(
            "`{}` is refused: its function 0 (counting the functions of all its modules \
             from 0) declares 300 locals over 408.8 KiB of code, 125571900 locals × bytes, \
             over the bound of 67108864 (the shape that makes compiling slow)",
            complex.display()
        )
    );
}

/// Issue 21, item 9: a compilation that takes longer than the bound is abandoned and
/// the app refused, naming the bound; loading it again is refused at once, without a
/// second compilation; while the abandoned one holds the only compiler slot, another
/// component is refused within the bound too, naming what holds the slot.
#[tokio::test]
async fn a_compilation_past_the_time_bound_is_refused() {
    let host = Host::new(HostConfig {
        cache_dir: None,
        compile: CompileLimits {
            timeout: std::time::Duration::from_millis(20),
            max_parallel: 1,
            ..CompileLimits::default()
        },
        ..HostConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.wasm");
    // Within every shape bound, and ~0.8 s of compilation on a 2-core machine.
    std::fs::write(&slow, live_locals_component(500, 20)).unwrap();
    for _ in 0..2 {
        let error = host.load(&slow).await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "`{}` is refused: compiling it took longer than the 20ms bound \
                 (a function too complex for the compiler?)",
                slow.display()
            )
        );
    }
    let other = dir.path().join("other.wasm");
    std::fs::write(&other, live_locals_component(500, 21)).unwrap();
    assert_eq!(
        host.load(&other).await.unwrap_err().to_string(),
        format!(
            "`{}` is refused: no compiler was free within 20ms: every one is still compiling \
             a component past its bound (`{}`), and such compilations run on until they end",
            other.display(),
            slow.display()
        )
    );
}

/// Issue 21, item 9: a file past the size bound is refused before it is read whole.
#[tokio::test]
async fn a_component_past_the_size_bound_is_refused() {
    let host = Host::new(HostConfig {
        cache_dir: None,
        compile: CompileLimits {
            max_component_bytes: 100_000,
            ..CompileLimits::default()
        },
        ..HostConfig::default()
    })
    .unwrap();
    let path = example_app("ip-classify");
    let size = std::fs::metadata(&path).unwrap().len();
    let error = host.load(&path).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("`{}` is refused: it is ", path.display()))
            && error.ends_with("over the 97.7 KiB bound on a component's size"),
        "{error} ({size} bytes)"
    );
}
