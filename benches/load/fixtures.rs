//! Writes the certificates the load harness needs (`benches/load/run.sh` calls it):
//! one for `bench.test`, and one per domain `dI.bench.test` for the
//! many-domains scenarios. Both Gatehouse and nginx are configured with these
//! same files, so both proxies do the same TLS work.
//!
//! Run: `cargo run --release --example bench-fixtures -- OUT_DIR N_DOMAIN_CERTS`

use std::path::Path;

fn write_cert(dir: &Path, stem: &str, names: Vec<String>) {
    let c = rcgen::generate_simple_self_signed(names).expect("certificate generation");
    std::fs::write(dir.join(format!("{stem}.crt")), c.cert.pem()).expect("write certificate");
    std::fs::write(dir.join(format!("{stem}.key")), c.key_pair.serialize_pem()).expect("write key");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: bench-fixtures OUT_DIR N_DOMAIN_CERTS");
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let dir = Path::new(&out).join("certs");
    std::fs::create_dir_all(&dir).expect("create output directory");
    write_cert(&dir, "bench", vec!["bench.test".into()]);
    for i in 0..n {
        let stem = format!("d{i}");
        if !dir.join(format!("{stem}.crt")).exists() {
            write_cert(&dir, &stem, vec![format!("d{i}.bench.test")]);
        }
    }
    println!("{} certificates in {}", n + 1, dir.display());
}
