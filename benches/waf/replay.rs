//! WAF measurement: replays the OWASP CRS request-side regression tests and a
//! benign corpus through a real `gatehouse` process (one per paranoia level)
//! in front of a backend that answers 200 to everything, and counts what the
//! proxy blocked. See benches/waf/README.md; `benches/waf/run.sh` builds and
//! runs it.
//!
//! Requests are written on raw TCP connections exactly as the corpus gives
//! them (malformed ones included), one connection per request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Parser;
use futures_util::StreamExt;
use serde_yaml_ng::{Mapping, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The CRS request-side families that are measured (949 and 999 are skipped).
const FAMILIES: [&str; 14] = [
    "911", "913", "920", "921", "922", "930", "931", "932", "933", "934", "941", "942", "943",
    "944",
];

/// The repository root (this example belongs to the root package).
const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Parser, Debug)]
#[command(
    name = "waf-replay",
    about = "Replays the CRS regression corpus and a benign corpus through gatehouse and counts blocked requests"
)]
struct Args {
    /// The gatehouse binary [default: <repo>/target/debug/gatehouse].
    #[arg(long)]
    gatehouse: Option<PathBuf>,
    /// The CRS regression corpus [default: <repo>/benches/waf/corpus/crs-regression,
    /// then <repo>/../shared/corpora/crs-regression, then /work/shared/corpora/crs-regression].
    #[arg(long, env = "GATEHOUSE_CRS_CORPUS")]
    corpus: Option<PathBuf>,
    /// The benign corpus (JSON lines) [default: <repo>/benches/waf/benign/requests.jsonl].
    #[arg(long)]
    benign: Option<PathBuf>,
    /// The committed result lines [default: <repo>/benches/waf/floors.txt].
    #[arg(long)]
    floors: Option<PathBuf>,
    /// Compare with the floors; exit 1 on any regression.
    #[arg(long, conflicts_with = "update")]
    check: bool,
    /// Rewrite the floors file with this run's numbers (full runs only).
    #[arg(long)]
    update: bool,
    /// Only these CRS families (e.g. 942, or 941,942); skips the benign corpus.
    #[arg(long, value_delimiter = ',')]
    family: Vec<String>,
    /// Only these paranoia levels (1-4); the benign corpus runs with level 1.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=4))]
    pl: Vec<u8>,
    /// Only the benign corpus (at paranoia level 1).
    #[arg(long)]
    only_benign: bool,
    /// Start the proxy without a `waf:` section (to test the plumbing).
    #[arg(long, env = "GATEHOUSE_WAF_NO_WAF", value_parser = clap::builder::BoolishValueParser::new())]
    no_waf: bool,
    /// List missed positives, blocked negatives and blocked benign requests.
    #[arg(long, short, env = "GATEHOUSE_WAF_VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    verbose: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to wait for a response's status line.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `expect_ids`: an attack the WAF should block.
    Positive,
    /// `no_expect_ids`: the target rule must not fire.
    Negative,
    /// A request from the benign corpus.
    Benign,
}

/// One request to replay.
struct Case {
    /// `REQUEST-942-…/942100.yaml` or `requests.jsonl:17`.
    source: String,
    /// `test_id` (and stage index when a test has several stages), or the benign kind.
    id: String,
    family: &'static str,
    pl: u8,
    kind: Kind,
    bytes: Vec<u8>,
}

impl Case {
    /// The request line and the start of the body, for humans.
    fn describe(&self) -> String {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.bytes.len());
        let line = String::from_utf8_lossy(&self.bytes[..end]);
        let mut out = truncate(line.trim_end(), 120);
        let body = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| &self.bytes[p + 4..])
            .unwrap_or_default();
        if !body.is_empty() {
            let _ = write!(
                out,
                " | body: {}",
                truncate(&String::from_utf8_lossy(body), 100)
            );
        }
        out
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.escape_debug().to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.escape_debug())
}

/// What came back on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The final status code.
    Status(u16),
    /// Closed or reset before any response byte.
    Closed,
    /// Bytes that do not start with an HTTP status line, then a close.
    Garbage,
    /// No status line within the timeout.
    Timeout,
    /// Could not connect (the proxy is gone or the port is wrong).
    ConnectError,
}

impl Outcome {
    fn blocked(self) -> bool {
        matches!(
            self,
            Outcome::Status(403) | Outcome::Status(400) | Outcome::Closed
        )
    }

    fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Closed => "closed".into(),
            Outcome::Garbage => "garbage".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::ConnectError => "connect-error".into(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let root = Path::new(REPO_ROOT);

    if args.update && (!args.family.is_empty() || !args.pl.is_empty() || args.only_benign) {
        bail!("--update rewrites every floor: run it without --family, --pl or --only-benign");
    }
    for f in &args.family {
        if !FAMILIES.contains(&f.as_str()) {
            bail!("unknown family {f}: expected one of {}", FAMILIES.join(" "));
        }
    }
    let families: Vec<&'static str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| args.family.is_empty() || args.family.iter().any(|a| a == f))
        .collect();
    let pls: Vec<u8> = (1..=4u8)
        .filter(|p| args.pl.is_empty() || args.pl.contains(p))
        .collect();
    let run_crs = !args.only_benign;
    let run_benign = args.only_benign || (args.family.is_empty() && pls.contains(&1));

    let gatehouse = args
        .gatehouse
        .clone()
        .unwrap_or_else(|| root.join("target/debug/gatehouse"));
    if !gatehouse.is_file() {
        bail!(
            "no gatehouse binary at {} (build it: cargo build --bin gatehouse, or pass --gatehouse)",
            gatehouse.display()
        );
    }
    let floors_path = args
        .floors
        .clone()
        .unwrap_or_else(|| root.join("benches/waf/floors.txt"));

    // The corpora.
    let mut cases = Vec::new();
    let mut hosts = BTreeSet::new();
    let mut unservable_hosts = BTreeSet::new();
    let mut corpus_stats = CorpusStats::default();
    if run_crs {
        let corpus = find_corpus(args.corpus.as_deref())?;
        let pl_of = read_rules_index(&corpus.join("rules-index.tsv"))?;
        load_crs(
            &corpus,
            &pl_of,
            &mut cases,
            &mut hosts,
            &mut unservable_hosts,
            &mut corpus_stats,
        )?;
        cases.retain(|c| families.contains(&c.family) && pls.contains(&c.pl));
        println!(
            "corpus: {} ({} files, {} empty, {} stages without expectations skipped)",
            corpus.display(),
            corpus_stats.files,
            corpus_stats.empty_files,
            corpus_stats.unlabelled_stages
        );
    }
    if run_benign {
        let path = args
            .benign
            .clone()
            .unwrap_or_else(|| root.join("benches/waf/benign/requests.jsonl"));
        let n = load_benign(&path, &mut cases)?;
        println!("benign: {} ({n} requests)", path.display());
    }

    // The backend, shared by every proxy.
    let backend = start_backend().await?;

    // One proxy per paranoia level.
    let mut outcomes: Vec<Option<Outcome>> = vec![None; cases.len()];
    for &pl in &pls {
        let selected: Vec<usize> = (0..cases.len())
            .filter(|&i| match cases[i].kind {
                Kind::Benign => pl == 1,
                _ => cases[i].pl == pl,
            })
            .collect();
        if selected.is_empty() {
            continue;
        }
        let t = Instant::now();
        let waf = (!args.no_waf).then_some(pl);
        let mut proxy = Proxy::start(&gatehouse, waf, &hosts, backend).await?;
        let results = replay(
            proxy.http,
            &cases,
            &selected,
            args.concurrency,
            Duration::from_secs(args.timeout),
        )
        .await;
        // A crash (or a panic caught inside the process) fails the run.
        proxy.ensure_healthy(pl)?;
        proxy.stop()?;
        for (i, o) in results {
            outcomes[i] = Some(o);
        }
        println!(
            "pl={pl}: {} requests in {:.1}s",
            selected.len(),
            t.elapsed().as_secs_f64()
        );
    }

    let connect_errors = outcomes
        .iter()
        .filter(|o| **o == Some(Outcome::ConnectError))
        .count();
    if connect_errors > 0 {
        bail!("{connect_errors} requests could not connect to the proxy");
    }

    // Tallies.
    let mut tally: BTreeMap<(&str, u8), Counts> = BTreeMap::new();
    if run_crs {
        for f in &families {
            for &p in &pls {
                tally.insert((f, p), Counts::default());
            }
        }
    }
    let mut benign = (0usize, 0usize);
    let mut by_status: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (c, o) in cases.iter().zip(&outcomes) {
        let Some(o) = *o else { continue };
        let b = o.blocked() as usize;
        let slot = match c.kind {
            Kind::Positive => 0,
            Kind::Negative => 1,
            Kind::Benign => 2,
        };
        by_status.entry(o.label()).or_default()[slot] += 1;
        match c.kind {
            Kind::Benign => {
                benign.0 += b;
                benign.1 += 1;
            }
            Kind::Positive => {
                let t = tally.entry((c.family, c.pl)).or_default();
                t.pos_blocked += b;
                t.pos += 1;
            }
            Kind::Negative => {
                let t = tally.entry((c.family, c.pl)).or_default();
                t.neg_blocked += b;
                t.neg += 1;
            }
        }
    }

    // Human summary.
    println!();
    println!(
        "{}",
        if args.no_waf {
            "== WAF results (proxy started WITHOUT a waf section: baseline) =="
        } else {
            "== WAF results (mode: block) =="
        }
    );
    if run_crs {
        println!(
            "{:<7} {:>3} {:>22} {:>22}",
            "family", "pl", "attacks blocked", "negatives blocked"
        );
        for ((f, p), t) in &tally {
            if t.pos + t.neg == 0 {
                continue;
            }
            println!(
                "{:<7} {:>3} {:>22} {:>22}",
                f,
                p,
                ratio(t.pos_blocked, t.pos),
                ratio(t.neg_blocked, t.neg)
            );
        }
        let mut per_pl: BTreeMap<u8, Counts> = BTreeMap::new();
        for ((_, p), t) in &tally {
            per_pl.entry(*p).or_default().add(t);
        }
        for (p, t) in &per_pl {
            println!(
                "{:<7} {:>3} {:>22} {:>22}",
                "all",
                p,
                ratio(t.pos_blocked, t.pos),
                ratio(t.neg_blocked, t.neg)
            );
        }
        let mut all = Counts::default();
        per_pl.values().for_each(|t| all.add(t));
        println!(
            "{:<7} {:>3} {:>22} {:>22}",
            "all",
            "*",
            ratio(all.pos_blocked, all.pos),
            ratio(all.neg_blocked, all.neg)
        );
    }
    if run_benign {
        println!("benign blocked: {}", ratio(benign.0, benign.1));
    }
    println!("responses (attacks / negatives / benign):");
    for (label, n) in &by_status {
        println!("  {label:>13}: {} / {} / {}", n[0], n[1], n[2]);
    }
    if !hosts.is_empty() || !unservable_hosts.is_empty() {
        println!(
            "hosts served: {}",
            hosts.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        if !unservable_hosts.is_empty() {
            println!(
                "Host values no domain can serve (answered as unknown hosts): {}",
                unservable_hosts
                    .iter()
                    .map(|h| format!("{h:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }

    if args.verbose {
        let list = |title: &str, pick: &dyn Fn(&Case, Outcome) -> bool| {
            let rows: Vec<String> = cases
                .iter()
                .zip(&outcomes)
                .filter_map(|(c, o)| o.filter(|o| pick(c, *o)).map(|o| (c, o)))
                .map(|(c, o)| {
                    format!(
                        "  {} #{} [pl{} {}] {}",
                        c.source,
                        c.id,
                        c.pl,
                        o.label(),
                        c.describe()
                    )
                })
                .collect();
            println!("{title}: {}", rows.len());
            rows.iter().for_each(|r| println!("{r}"));
        };
        println!();
        list("missed attacks", &|c, o| {
            c.kind == Kind::Positive && !o.blocked()
        });
        list(
            "attacks answered 400 or closed (the HTTP parser, not a WAF rule)",
            &|c, o| c.kind == Kind::Positive && o.blocked() && o != Outcome::Status(403),
        );
        list("blocked negatives", &|c, o| {
            c.kind == Kind::Negative && o.blocked()
        });
        list("blocked benign requests", &|c, o| {
            c.kind == Kind::Benign && o.blocked()
        });
        list("timeouts and unparsable responses", &|_, o| {
            matches!(o, Outcome::Timeout | Outcome::Garbage)
        });
    }

    // The machine-readable lines.
    let mut lines = Vec::new();
    for ((f, p), t) in &tally {
        lines.push(format!(
            "WAF family={f} pl={p} positives_blocked={} positives={} negatives_blocked={} negatives={}",
            t.pos_blocked, t.pos, t.neg_blocked, t.neg
        ));
    }
    if run_benign {
        lines.push(format!(
            "WAF benign_blocked={} benign={}",
            benign.0, benign.1
        ));
    }

    println!();
    println!("elapsed: {:.1}s", started.elapsed().as_secs_f64());
    let mut failed = false;
    if args.check {
        let full_run = args.family.is_empty() && args.pl.is_empty() && !args.only_benign;
        failed = !check_floors(&floors_path, &lines, full_run)?;
    }
    if args.update {
        let mut text = String::from(
            "# WAF ratchet: benches/waf/run.sh --check fails if a positives_blocked drops below,\n\
             # or a negatives_blocked / benign_blocked rises above, these numbers.\n\
             # Rewritten by benches/waf/run.sh --update (see benches/waf/README.md).\n",
        );
        if args.no_waf {
            text.push_str("# Recorded with --no-waf: what the proxy rejects without a WAF.\n");
        }
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&floors_path, text)
            .with_context(|| format!("writing {}", floors_path.display()))?;
        println!("floors updated: {}", floors_path.display());
    }
    println!();
    for l in &lines {
        println!("{l}");
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn ratio(n: usize, d: usize) -> String {
    if d == 0 {
        return "-".into();
    }
    format!("{n}/{d} ({:.1}%)", 100.0 * n as f64 / d as f64)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    pos_blocked: usize,
    pos: usize,
    neg_blocked: usize,
    neg: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.pos_blocked += o.pos_blocked;
        self.pos += o.pos;
        self.neg_blocked += o.neg_blocked;
        self.neg += o.neg;
    }
}

// ---------------------------------------------------------------------------
// Floors (the ratchet)

/// Parses `WAF key=value …` lines into (identity, values): the identity is
/// `family=…,pl=…` or `benign`.
fn parse_result_lines(text: &str) -> Result<BTreeMap<String, HashMap<String, u64>>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("WAF ") else {
            continue;
        };
        let mut kv = HashMap::new();
        let mut ident = Vec::new();
        for field in rest.split_whitespace() {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow!("line {}: {field:?} is not key=value", n + 1))?;
            if k == "family" || k == "pl" {
                ident.push(format!("{k}={v}"));
            } else {
                let v: u64 = v
                    .parse()
                    .map_err(|_| anyhow!("line {}: {k}={v:?} is not a number", n + 1))?;
                kv.insert(k.to_string(), v);
            }
        }
        let ident = if ident.is_empty() {
            "benign".to_string()
        } else {
            ident.join(" ")
        };
        if out.insert(ident.clone(), kv).is_some() {
            bail!("line {}: {ident} appears twice", n + 1);
        }
    }
    Ok(out)
}

/// Prints every regression against the floors; true when there is none.
fn check_floors(path: &Path, lines: &[String], full_run: bool) -> Result<bool> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading floors {}", path.display()))?;
    let floors = parse_result_lines(&text)?;
    let current = parse_result_lines(&lines.join("\n"))?;
    let mut regressions = Vec::new();
    let mut notes = Vec::new();
    for (ident, now) in &current {
        let Some(floor) = floors.get(ident) else {
            notes.push(format!("{ident}: no floor (run --update to record one)"));
            continue;
        };
        let get = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        for total in ["positives", "negatives", "benign"] {
            if floor.contains_key(total) && get(floor, total) != get(now, total) {
                notes.push(format!(
                    "{ident}: {total}={} but the floor was recorded with {total}={} (corpus changed?)",
                    get(now, total),
                    get(floor, total)
                ));
            }
        }
        // (key, higher is better)
        for (key, higher_better) in [
            ("positives_blocked", true),
            ("negatives_blocked", false),
            ("benign_blocked", false),
        ] {
            if !floor.contains_key(key) {
                continue;
            }
            let (f, n) = (get(floor, key), get(now, key));
            let worse = if higher_better { n < f } else { n > f };
            let better = if higher_better { n > f } else { n < f };
            if worse {
                regressions.push(format!("REGRESSION {ident}: {key}={n} (floor {f})"));
            } else if better {
                notes.push(format!(
                    "improved {ident}: {key}={n} (floor {f}); run --update to ratchet"
                ));
            }
        }
    }
    let unmeasured: Vec<&String> = floors
        .keys()
        .filter(|k| !current.contains_key(*k))
        .collect();
    if full_run {
        for ident in unmeasured {
            notes.push(format!(
                "{ident}: in the floors but not measured in this run"
            ));
        }
    } else if !unmeasured.is_empty() {
        notes.push(format!(
            "partial run: {} floor lines not compared",
            unmeasured.len()
        ));
    }
    println!();
    println!("== check against {} ==", path.display());
    for n in &notes {
        println!("note: {n}");
    }
    for r in &regressions {
        println!("{r}");
    }
    if regressions.is_empty() {
        println!(
            "check: OK ({} result lines at or above their floors)",
            current.len()
        );
    } else {
        println!("check: FAILED ({} regressions)", regressions.len());
    }
    Ok(regressions.is_empty())
}

// ---------------------------------------------------------------------------
// The CRS corpus

#[derive(Default)]
struct CorpusStats {
    files: usize,
    empty_files: usize,
    unlabelled_stages: usize,
}

fn find_corpus(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        if p.join("rules-index.tsv").is_file() {
            return Ok(p.to_path_buf());
        }
        bail!(
            "CRS corpus not found at {} (no rules-index.tsv there); set GATEHOUSE_CRS_CORPUS or --corpus",
            p.display()
        );
    }
    let candidates = [
        // A verbatim copy kept with the floors it produced (see its SOURCE.md).
        Path::new(REPO_ROOT).join("benches/waf/corpus/crs-regression"),
        Path::new(REPO_ROOT).join("../shared/corpora/crs-regression"),
        PathBuf::from("/work/shared/corpora/crs-regression"),
    ];
    for c in &candidates {
        if c.join("rules-index.tsv").is_file() {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "CRS regression corpus not found (looked in {}); point GATEHOUSE_CRS_CORPUS or --corpus at the directory holding rules-index.tsv",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    )
}

/// rule id -> paranoia level (blank or missing: 1).
fn read_rules_index(path: &Path) -> Result<HashMap<String, u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.is_empty() || cols[0].trim().is_empty() {
            continue;
        }
        let pl = cols
            .get(2)
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|p| (1..=4).contains(p))
            .unwrap_or(1);
        out.insert(cols[0].trim().to_string(), pl);
    }
    Ok(out)
}

fn load_crs(
    corpus: &Path,
    pl_of: &HashMap<String, u8>,
    cases: &mut Vec<Case>,
    hosts: &mut BTreeSet<String>,
    unservable: &mut BTreeSet<String>,
    stats: &mut CorpusStats,
) -> Result<()> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
        .with_context(|| format!("listing {}", corpus.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(family) = name
            .strip_prefix("REQUEST-")
            .and_then(|r| r.get(..3))
            .and_then(|f| FAMILIES.iter().copied().find(|x| *x == f))
        else {
            continue;
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for file in files {
            stats.files += 1;
            let source = format!("{name}/{}", file.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let doc: Value = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            let tests = doc.get("tests").and_then(Value::as_sequence);
            let Some(tests) = tests.filter(|t| !t.is_empty()) else {
                stats.empty_files += 1;
                continue;
            };
            // The file is named after its rule (933200.yaml says `rule_id: 9331200`).
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            let pl = pl_of
                .get(&stem)
                .or_else(|| doc.get("rule_id").and_then(|r| pl_of.get(&scalar(r))))
                .copied()
                .unwrap_or(1);
            for test in tests {
                let test_id = test.get("test_id").map(scalar).unwrap_or_default();
                let stages = test
                    .get("stages")
                    .and_then(Value::as_sequence)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (n, stage) in stages.iter().enumerate() {
                    // Schema v1 wrapped each stage in `stage:`.
                    let stage = stage.get("stage").unwrap_or(stage);
                    let log = stage.get("output").and_then(|o| o.get("log"));
                    let ids = |k: &str| {
                        log.and_then(|l| l.get(k))
                            .and_then(Value::as_sequence)
                            .is_some_and(|s| !s.is_empty())
                    };
                    let kind = if ids("expect_ids") {
                        Kind::Positive
                    } else if ids("no_expect_ids") {
                        Kind::Negative
                    } else {
                        stats.unlabelled_stages += 1;
                        continue;
                    };
                    let input = stage
                        .get("input")
                        .and_then(Value::as_mapping)
                        .ok_or_else(|| anyhow!("{source} test {test_id}: stage without input"))?;
                    let (bytes, host) = build_crs_request(input)
                        .with_context(|| format!("{source} test {test_id}"))?;
                    if let Some(h) = host {
                        match servable_host(&h) {
                            Some(h) => {
                                hosts.insert(h);
                            }
                            None => {
                                unservable.insert(h);
                            }
                        }
                    }
                    let id = if stages.len() > 1 {
                        format!("{test_id}/{}", n + 1)
                    } else {
                        test_id.clone()
                    };
                    cases.push(Case {
                        source: source.clone(),
                        id,
                        family,
                        pl,
                        kind,
                        bytes,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A YAML scalar as text (numbers and booleans as written; null: empty).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Tagged(t) => scalar(&t.value),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn get_str(m: &Mapping, key: &str) -> Option<String> {
    m.get(key).filter(|v| !v.is_null()).map(scalar)
}

/// The bytes to send for one stage, as go-ftw (the CRS test runner) builds them,
/// and the Host header value if there is one.
fn build_crs_request(input: &Mapping) -> Result<(Vec<u8>, Option<String>)> {
    if let Some(enc) = get_str(input, "encoded_request").filter(|s| !s.is_empty()) {
        let clean: String = enc.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .context("encoded_request is not base64")?;
        let host = raw_host(&raw);
        return Ok((raw, host));
    }
    if let Some(raw) = get_str(input, "raw_request").filter(|s| !s.is_empty()) {
        let host = raw_host(raw.as_bytes());
        return Ok((raw.into_bytes(), host));
    }

    let method = get_str(input, "method").unwrap_or_else(|| "GET".into());
    let uri = get_str(input, "uri").unwrap_or_else(|| "/".into());
    let version = get_str(input, "version").unwrap_or_else(|| "HTTP/1.1".into());
    let mut headers: Vec<(String, String)> = Vec::new();
    for key in ["headers", "ordered_headers"] {
        match input.get(key) {
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    headers.push((scalar(k), scalar(v)));
                }
            }
            Some(Value::Sequence(list)) => {
                for h in list {
                    let name = h.get("name").map(scalar).unwrap_or_default();
                    let value = h.get("value").map(scalar).unwrap_or_default();
                    headers.push((name, value));
                }
            }
            _ => {}
        }
    }
    let autocomplete = input
        .get("autocomplete_headers")
        .and_then(Value::as_bool)
        .unwrap_or(true)
        && !input
            .get("stop_magic")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let mut data = expand_templates(&get_str(input, "data").unwrap_or_default()).into_bytes();

    let has =
        |hs: &[(String, String)], name: &str| hs.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !data.is_empty() && autocomplete {
        if !has(&headers, "Content-Type") {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let form = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Content-Type")
                && v.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
        // go-ftw encodes `k=v&…` bodies that are not already encoded.
        if form && !data.contains(&b'%') && !data.contains(&b'+') {
            data = form_encode_pairs(&data);
        }
    }
    let multipart = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("Content-Type")
            && v.to_ascii_lowercase().contains("multipart/form-data;")
    });
    if multipart {
        // go-ftw turns every LF of a multipart body into CRLF.
        let mut out = Vec::with_capacity(data.len() + 64);
        for &b in &data {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        data = out;
    }
    if autocomplete {
        if !has(&headers, "Connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        // go-ftw: `^POST|PUT|PATCH|DELETE$` (sic).
        let body_method = method.starts_with("POST")
            || method.contains("PUT")
            || method.contains("PATCH")
            || method.ends_with("DELETE");
        if !has(&headers, "Content-Length") && (!data.is_empty() || body_method) {
            headers.push(("Content-Length".into(), data.len().to_string()));
        }
    }

    let mut out = format!("{method} {uri} {version}\r\n").into_bytes();
    for (k, v) in &headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Host"))
        .map(|(_, v)| v.clone());
    Ok((out, host))
}

/// go-ftw renders `data` as a Go template; the corpus only uses sprig's
/// `{{ "x" | repeat N }}`, which is expanded here. Anything else stays as written.
fn expand_templates(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            rest = &rest[open..];
            break;
        };
        let inner = after[..close].trim();
        let repeated = (|| {
            let lit = inner.strip_prefix('"')?;
            let (text, tail) = lit.split_once('"')?;
            let n = tail
                .trim()
                .strip_prefix('|')?
                .trim()
                .strip_prefix("repeat")?;
            let n: usize = n.trim().parse().ok()?;
            Some(text.repeat(n))
        })();
        match repeated {
            Some(r) => out.push_str(&r),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's url.QueryEscape on each key and value of `k=v&k=v`.
fn form_encode_pairs(data: &[u8]) -> Vec<u8> {
    fn escape(out: &mut Vec<u8>, s: &[u8]) {
        for &b in s {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
                b' ' => out.push(b'+'),
                _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            }
        }
    }
    let mut tokens: Vec<&[u8]> = data.split(|&b| b == b'&').collect();
    // A trailing `&` adds no empty pair (as in go-ftw).
    if data.ends_with(b"&") {
        tokens.pop();
    }
    let mut out = Vec::with_capacity(data.len() * 2);
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        match token.iter().position(|&b| b == b'=') {
            Some(eq) => {
                escape(&mut out, &token[..eq]);
                out.push(b'=');
                escape(&mut out, &token[eq + 1..]);
            }
            None => escape(&mut out, token),
        }
    }
    out
}

/// The Host header of raw request bytes.
fn raw_host(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("host")
            .then(|| v.trim().to_string())
    })
}

/// The name a domain's `hosts` accepts for a Host header value (lowercased,
/// port and trailing dot stripped), if the config validator accepts it.
fn servable_host(raw: &str) -> Option<String> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.starts_with('[') {
        return None; // IPv6 literals cannot be configured as hosts
    }
    let name = match lower.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => lower.as_str(),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok))
        .then(|| name.to_string())
}

// ---------------------------------------------------------------------------
// The benign corpus

fn load_benign(path: &Path, cases: &mut Vec<Case>) -> Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the benign corpus {} (regenerate it: python3 benches/waf/benign/generate.py)",
            path.display()
        )
    })?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        let field = |k: &str| {
            r.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{}:{}: no string {k:?}", path.display(), i + 1))
        };
        let (method, uri, kind) = (field("method")?, field("uri")?, field("kind")?);
        let text = r
            .get("body")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        // Binary bodies (uploads) are stored as base64.
        let body = match r.get("body_encoding").and_then(serde_json::Value::as_str) {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(text)
                .with_context(|| format!("{}:{}: body is not base64", path.display(), i + 1))?,
            _ => text.as_bytes().to_vec(),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for h in r
            .get("headers")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            match h.as_array().map(Vec::as_slice) {
                Some([k, v]) => headers.push((
                    k.as_str().unwrap_or_default().to_string(),
                    v.as_str().unwrap_or_default().to_string(),
                )),
                _ => bail!(
                    "{}:{}: headers must be [name, value] pairs",
                    path.display(),
                    i + 1
                ),
            }
        }
        let has = |hs: &[(String, String)], name: &str| {
            hs.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has(&headers, "Content-Length")
            && (!body.is_empty() || matches!(method.as_str(), "POST" | "PUT" | "PATCH"))
        {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if !has(&headers, "Connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        let mut out = format!("{method} {uri} HTTP/1.1\r\n").into_bytes();
        for (k, v) in &headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        cases.push(Case {
            source: format!("requests.jsonl:{}", i + 1),
            id: kind,
            family: "benign",
            pl: 1,
            kind: Kind::Benign,
            bytes: out,
        });
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// Backend, proxy, replay

/// An HTTP server on 127.0.0.1 that reads every request body and answers 200.
async fn start_backend() -> Result<SocketAddr> {
    async fn ok(req: axum::extract::Request) -> &'static str {
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        "ok"
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(ok);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Proxy {
    child: Child,
    http: SocketAddr,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(
        gatehouse: &Path,
        waf_pl: Option<u8>,
        hosts: &BTreeSet<String>,
        backend: SocketAddr,
    ) -> Result<Proxy> {
        // A free port may be taken by someone else before gatehouse binds it: retry.
        for _ in 0..5 {
            if let Some(p) = Self::try_start(gatehouse, waf_pl, hosts, backend).await? {
                return Ok(p);
            }
        }
        bail!("gatehouse could not bind its ports after 5 attempts")
    }

    async fn try_start(
        gatehouse: &Path,
        waf_pl: Option<u8>,
        hosts: &BTreeSet<String>,
        backend: SocketAddr,
    ) -> Result<Option<Proxy>> {
        let dir = tempfile::tempdir()?;
        let (http, internal) = (free_port()?, free_port()?);
        let mut host_list = vec!["\"localhost\"".to_string()];
        for h in hosts.iter().filter(|h| *h != "localhost") {
            host_list.push(serde_json::to_string(h)?);
        }
        let mut yaml = String::new();
        let _ = write!(
            yaml,
            r#"listeners: {{ http: "127.0.0.1:{http}", internal: "127.0.0.1:{internal}" }}
server: {{ threads: 2, grace_period: 1s, upgrade_sock: {sock} }}
limits: {{ max_body_bytes: 10485760 }}
tenants: [{{ name: bench }}]
pools: [{{ name: backend, tenant: bench, targets: [{{ addr: "{backend}" }}] }}]
domains:
  - hosts: [{hosts}]
    tenant: bench
"#,
            sock = serde_json::to_string(&dir.path().join("upgrade.sock"))?,
            hosts = host_list.join(", "),
        );
        if let Some(pl) = waf_pl {
            let _ = writeln!(yaml, "    waf: {{ mode: block, paranoia: {pl} }}");
        }
        yaml.push_str("    routes: [{ path: /, pool: backend }]\n");
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, &yaml)?;
        let log_path = dir.path().join("gatehouse.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(gatehouse)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", gatehouse.display()))?;
        let mut proxy = Proxy {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            log_path,
            _dir: dir,
        };
        let ready = SocketAddr::from(([127, 0, 0, 1], internal));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            if exchange(ready, probe, Duration::from_secs(2)).await == Outcome::Status(200) {
                return Ok(Some(proxy));
            }
            if let Some(status) = proxy.child.try_wait()? {
                let log = proxy.log();
                if log.contains("Address already in use") {
                    return Ok(None);
                }
                let hint = if log.contains("unknown field `waf`") {
                    "\n(this gatehouse has no WAF yet: run with --no-waf to test the plumbing)"
                } else {
                    ""
                };
                bail!("gatehouse exited with {status} during start:\n{log}\nconfig:\n{yaml}{hint}");
            }
            if Instant::now() > deadline {
                bail!("gatehouse not ready after 30s:\n{}", proxy.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Fails if the process died or logged a panic.
    fn ensure_healthy(&mut self, pl: u8) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "gatehouse CRASHED during the paranoia level {pl} run ({status}):\n{}",
                tail(&self.log(), 60)
            );
        }
        let log = self.log();
        if log.contains("panicked at") {
            bail!(
                "gatehouse PANICKED during the paranoia level {pl} run:\n{}",
                tail(&log, 60)
            );
        }
        Ok(())
    }

    /// SIGTERM, then wait for the exit.
    fn stop(&mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("warning: gatehouse exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                eprintln!("warning: gatehouse did not exit within 15s of SIGTERM; killed");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn replay(
    addr: SocketAddr,
    cases: &[Case],
    selected: &[usize],
    concurrency: usize,
    timeout: Duration,
) -> Vec<(usize, Outcome)> {
    let cases = Arc::new(cases);
    futures_util::stream::iter(selected.iter().copied())
        .map(|i| {
            let cases = cases.clone();
            async move { (i, exchange(addr, &cases[i].bytes, timeout).await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Sends `bytes` on a new connection and reads the final status line.
async fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Outcome {
    let run = async {
        let mut s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => return Outcome::ConnectError,
        };
        // The proxy may answer and close before it has read everything (an
        // early rejection): a failed write is not an outcome, the response is.
        let _ = s.write_all(bytes).await;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        let mut start = 0; // where the current response begins
        loop {
            if let Some(o) = parse_status(&buf, &mut start) {
                return o;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return if buf.len() == start {
                        Outcome::Closed
                    } else {
                        Outcome::Garbage
                    };
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Outcome::Timeout)
}

/// The final status in `buf[*start..]`, skipping interim (1xx) responses.
fn parse_status(buf: &[u8], start: &mut usize) -> Option<Outcome> {
    loop {
        let rest = &buf[*start..];
        if rest.len() >= 5 && !rest.starts_with(b"HTTP/") {
            return Some(Outcome::Garbage);
        }
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&rest[..eol]);
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        let Some(code) = code else {
            return Some(Outcome::Garbage);
        };
        if (100..200).contains(&code) && code != 101 {
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
            *start += end + 4;
            continue;
        }
        return Some(Outcome::Status(code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> String {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let (bytes, _) = build_crs_request(v.as_mapping().unwrap()).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn builds_requests_as_go_ftw_does() {
        let r = build(
            "method: POST\nuri: /post\nheaders: { Host: localhost }\ndata: \"var=1234 OR 1=1\"",
        );
        assert_eq!(
            r,
            "POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Connection: close\r\nContent-Length: 17\r\n\r\nvar=1234+OR+1%3D1"
        );
        // Already encoded: sent as is.
        let r = build("method: POST\nheaders: { Host: localhost }\ndata: \"a=%27&b=c\"");
        assert!(r.ends_with("\r\n\r\na=%27&b=c"), "{r}");
        // No autocompletion: exactly what is given.
        let r =
            build("uri: /x\nversion: HTTP/1.0\nautocomplete_headers: false\nheaders: { Host: h }");
        assert_eq!(r, "GET /x HTTP/1.0\r\nHost: h\r\n\r\n");
        // Templates and multipart line endings.
        let r = build(
            "method: POST\nheaders: { Content-Type: \"multipart/form-data; boundary=b\" }\n\
             data: \"--b\\n{{ \\\"1\\\" | repeat 3 }}\\n--b--\\n\"",
        );
        assert!(
            r.ends_with("Content-Length: 17\r\n\r\n--b\r\n111\r\n--b--\r\n"),
            "{r}"
        );
    }

    #[test]
    fn form_encoding_and_hosts() {
        assert_eq!(form_encode_pairs(b"a b=c&d&"), b"a+b=c&d");
        assert_eq!(servable_host("LocalHost:8080"), Some("localhost".into()));
        assert_eq!(servable_host("[::1]"), None);
        assert_eq!(servable_host("localhost%00"), None);
    }

    #[test]
    fn status_lines() {
        let mut start = 0;
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n";
        assert_eq!(parse_status(buf, &mut start), Some(Outcome::Status(403)));
        let mut start = 0;
        assert_eq!(parse_status(b"HTTP/1.1 2", &mut start), None);
        assert_eq!(
            parse_status(b"SSH-2.0\r\n", &mut start),
            Some(Outcome::Garbage)
        );
    }

    #[test]
    fn floors_parse_by_key() {
        let m = parse_result_lines(
            "# c\nWAF family=942 pl=1 positives_blocked=3 positives=9 negatives_blocked=0 negatives=2\n\
             WAF benign_blocked=1 benign=10\n",
        )
        .unwrap();
        assert_eq!(m["family=942 pl=1"]["positives"], 9);
        assert_eq!(m["benign"]["benign_blocked"], 1);
    }
}
